"""What makes a run one of the report's rows, and what else is labelled with what differs.

A run is a report row only at the report's settings (report.md): the row's own table
columns, its own input size (its ImageInput layer), 30 epochs at most, batch 128, trained
on the whole train folder and validated on the val folder of the full archive, with
MATLAB R2018b's init, stopping and kept weights. Only such a run is compared with the
published accuracy (evaluate, report.py). Light on purpose (no torch).
"""

from __future__ import annotations

from ..params import ROW_COLUMNS, ReportRow

REPORT_EPOCHS = 30  # MATLAB's MaxEpochs default
REPORT_BATCH_SIZE = 128  # MATLAB's MiniBatchSize default
REPORT_PROTOCOL = "val_folder"
FULL_ARCHIVE = {"train": 9469, "val": 3925}  # imagenette2's images per folder
R2018B_TRAINING = {"init": "normal_0.01", "patience_on": "loss", "keep": "final"}
GOOGLENET_INPUT_SIZE = 224
# MathWorks' GoogLeNet transfer-learning example of that era (report.md): what the
# fine-tuning is compared at.
GOOGLENET_RECIPE = {"max_epochs": 6, "batch_size": 10, "keep": "final"}


def data_differences(protocol: str, folders: dict) -> list[str]:
    """How the data differ from the report's: the protocol, and images per folder."""
    found = []
    if protocol != REPORT_PROTOCOL:
        found.append(f"protocol {protocol}")
    counts = {folder: int(folders.get(folder, 0)) for folder in FULL_ARCHIVE}
    if counts != FULL_ARCHIVE:
        found.append(f"{counts['train']} train + {counts['val']} val images")
    return found


def custom_differences(run: dict, rows: dict[str, ReportRow]) -> tuple[list[str], list[str]]:
    """(settings, columns) in which a custom-network run differs from the report's row
    of the same name; both empty: a report row. `run`: network, kind (custom | timm),
    input_size, own_input_size, max_epochs, batch_size, init, patience_on, keep,
    dropout (False: the Dropout layers left out), row_params (the table's columns),
    protocol, folders (images per folder)."""
    settings = []
    if run["input_size"] != run["own_input_size"]:
        settings.append(f"{run['input_size']} px")
    if run["max_epochs"] != REPORT_EPOCHS:
        settings.append(f"{run['max_epochs']} epochs max")
    if run["batch_size"] != REPORT_BATCH_SIZE:
        settings.append(f"batch {run['batch_size']}")
    settings += data_differences(run["protocol"], run["folders"])
    for key, value in R2018B_TRAINING.items():
        if run.get(key) != value:
            settings.append(f"{key} {run.get(key)}")
    if run.get("dropout") is False:
        settings.append("no dropout")
    row = rows.get(run["network"])
    if run["kind"] != "custom":
        columns = ["a modern recipe, not one of the report's rows"]
    elif row is None:
        columns = [f"{run['network']} is not one of the report's rows"]
    else:
        columns = [
            f"{key} {run['row_params'][key]} (row: {getattr(row, key)})"
            for key in ROW_COLUMNS
            if run["row_params"][key] != getattr(row, key)
        ]
    return settings, columns


def googlenet_differences(run: dict) -> list[str]:
    """How a GoogLeNet run differs from the report's fine-tuning: ImageNet weights, 224 px,
    the recipe's epochs, batch and kept weights, the report's data. `run`: model,
    pretrained, input_size, max_epochs, batch_size, keep, protocol, folders."""
    found = []
    if run.get("model", "googlenet") != "googlenet":
        found.append(f"stand-in {run['model']}, not GoogLeNet")
    if not run["pretrained"]:
        found.append("not from ImageNet weights")
    if run["input_size"] != GOOGLENET_INPUT_SIZE:
        found.append(f"{run['input_size']} px")
    if run["max_epochs"] != GOOGLENET_RECIPE["max_epochs"]:
        found.append(f"{run['max_epochs']} epochs max")
    if run["batch_size"] != GOOGLENET_RECIPE["batch_size"]:
        found.append(f"batch {run['batch_size']}")
    if run["keep"] != GOOGLENET_RECIPE["keep"]:
        found.append(f"keep {run['keep']}")
    return found + data_differences(run["protocol"], run["folders"])


def settings_label(settings: str) -> str:
    """evaluate's `differs_in_settings` ("32 px, 12 epochs max"; "": none) as a label."""
    return "report settings" if not settings else f"differs: {settings}"
