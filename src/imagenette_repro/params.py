"""Read params.yaml and check every key before any heavy work starts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .architecture import ArchitectureError, parse_architecture, parse_layer
from .classes import NUM_CLASSES
from .errors import UserError

OPTIMIZERS = ("sgdm", "adam")
INITS = ("normal_0.01", "glorot", "torch_default")
PROTOCOLS = ("val_folder", "train_split")  # see data.split_dataset
PATIENCE_ON = ("loss", "accuracy")  # see training.EarlyStopping
KEEP = ("final", "best_loss", "best_accuracy")  # which epoch's weights a run keeps
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# A modern recipe's choices (`recipes`; see training.make_scheduler, models.build_timm_network).
RECIPE_OPTIMIZERS = ("adamw", "sgd_nesterov")
RECIPE_SCHEDULES = ("cosine", "onecycle")
STEM_STRIDES = (1, 2, 4)

# Allowed keys per section, with the type each value must have. `None` in a tuple
# means the key may be null.
NUMBER = (int, float)
SCHEMA: dict[str, Any] = {
    "seed": int,
    "network": str,
    "optimizer": str,
    "learn_rate": NUMBER,
    "patience": int,
    "drop_period": int,
    "drop_rate_factor": NUMBER,
    "image_augmentation": bool,
    "data": {
        "archive": str,
        "md5": (str, type(None)),
        "protocol": str,
        "val_fraction": NUMBER,
        "input_size": int,
        "skip_bad_images": bool,
    },
    "train": {
        "batch_size": int,
        "max_epochs": int,
        "momentum": NUMBER,
        "adam_beta1": NUMBER,
        "adam_beta2": NUMBER,
        "adam_epsilon": NUMBER,
        "l2_regularization": NUMBER,
        "init": str,
        "patience_on": str,
        "keep": str,
        "scaled_input": bool,
        "dropout": bool,
        "scale_min": NUMBER,
        "scale_max": NUMBER,
        "translation_px": NUMBER,
        "reflection": bool,
    },
    "googlenet": {
        "model": str,
        "weights": str,
        "freeze_through": (str, type(None)),
        "optimizer": str,
        "learn_rate": NUMBER,
        "new_layer_lr_factor": NUMBER,
        "batch_size": int,
        "max_epochs": int,
        "patience": (int, type(None)),
        "patience_on": str,
        "keep": str,
        "drop_period": int,
        "drop_rate_factor": NUMBER,
        "momentum": NUMBER,
        "l2_regularization": NUMBER,
        "scale_min": NUMBER,
        "scale_max": NUMBER,
        "translation_px": NUMBER,
        "reflection": bool,
    },
    "runtime": {
        "device": str,
        "num_threads": int,
        "processes": int,
        "channels_last": bool,
        "precision": str,
        "compile": bool,
        "data_on_device": (bool, str),
        "cudnn_benchmark": bool,
    },
    "report_rows": dict,
    "report_googlenet_accuracy": NUMBER,
    "assumed_architectures": dict,
    "architectures": dict,
    "recipes": dict,
}
# The report's table columns: what makes a run one of the report's rows.
ROW_COLUMNS = (
    "optimizer",
    "learn_rate",
    "patience",
    "drop_period",
    "drop_rate_factor",
    "image_augmentation",
)
ROW_KEYS = {**{key: SCHEMA[key] for key in ROW_COLUMNS}, "accuracy": NUMBER}
# A modern recipe: a timm model and its training, in place of the report's columns.
RECIPE_KEYS = {
    "model": str,
    "stem_stride": int,
    "optimizer": str,
    "learn_rate": NUMBER,
    "weight_decay": NUMBER,
    "schedule": str,
    "warmup_epochs": NUMBER,
    "label_smoothing": NUMBER,
    "mixup_alpha": NUMBER,
    "cutmix_alpha": NUMBER,
    "batch_size": int,
    "augmentation": bool,
    "reflection": bool,
}
# torchvision's GoogLeNet children, in order (what googlenet.freeze_through may name).
GOOGLENET_LAYERS = (
    "conv1",
    "maxpool1",
    "conv2",
    "conv3",
    "maxpool2",
    "inception3a",
    "inception3b",
    "maxpool3",
    "inception4a",
    "inception4b",
    "inception4c",
    "inception4d",
    "inception4e",
    "maxpool4",
    "inception5a",
    "inception5b",
)
# The children of each pretrained network googlenet.model may name (pretrained.py): what
# googlenet.freeze_through may name (timm's tf_efficientnet_lite0 for the stand-in).
PRETRAINED_LAYERS = {
    "googlenet": GOOGLENET_LAYERS,
    "efficientnet_lite0": ("conv_stem", "bn1", "blocks", "conv_head", "bn2"),
}
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats: PyYAML reads `1e-08` (no dot) as a string, DVC and OmegaConf
    (which rewrite params.yaml on `dvc exp run -S`) as a number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$"
        r"|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


class ParamsError(UserError, ValueError):
    """A value in params.yaml that the pipeline cannot use; the message names the key."""


def _type_name(expected: Any) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    names = {int: "integer", float: "number", str: "string", bool: "true/false", dict: "mapping"}
    return " or ".join("null" if t is type(None) else names.get(t, t.__name__) for t in types)


def _check_types(values: dict, schema: dict, prefix: str = "") -> None:
    for key in values:
        if key not in schema:
            allowed = ", ".join(sorted(schema))
            raise ParamsError(f"params.yaml: unknown key '{prefix}{key}' (allowed: {allowed})")
    for key, expected in schema.items():
        name = f"{prefix}{key}"
        if key not in values:
            raise ParamsError(f"params.yaml: missing key '{name}'")
        value = values[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise ParamsError(f"params.yaml: '{name}' must be a mapping, got {value!r}")
            _check_types(value, expected, f"{name}.")
            continue
        types = expected if isinstance(expected, tuple) else (expected,)
        # bool is an int in Python; a `true` where a number belongs is a mistake.
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            raise ParamsError(
                f"params.yaml: '{name}' must be {_type_name(expected)}, got {value!r}"
            )


def _positive(params: dict, *keys: str) -> None:
    for key in keys:
        value = _get(params, key)
        if value is not None and value <= 0:
            raise ParamsError(f"params.yaml: '{key}' must be > 0, got {value!r}")


def _get(params: dict, dotted: str) -> Any:
    value: Any = params
    for part in dotted.split("."):
        value = value[part]
    return value


def _choice(params: dict, key: str, allowed: tuple[str, ...]) -> None:
    value = _get(params, key)
    if value not in allowed:
        raise ParamsError(f"params.yaml: '{key}' is {value!r}; allowed: {', '.join(allowed)}")


def _check_recipes(params: dict) -> None:
    taken = set(params["report_rows"]) | set(params["architectures"])
    taken |= set(params["assumed_architectures"])
    for name, recipe in params["recipes"].items():
        key = f"recipes.{name}"
        if not isinstance(recipe, dict):
            raise ParamsError(f"params.yaml: '{key}' must be a mapping")
        if name in taken:
            raise ParamsError(
                f"params.yaml: '{key}' has the name of a report row or layer list; "
                "give the recipe its own name"
            )
        _check_types(recipe, RECIPE_KEYS, f"{key}.")
        for field, allowed in (
            ("optimizer", RECIPE_OPTIMIZERS),
            ("schedule", RECIPE_SCHEDULES),
            ("stem_stride", STEM_STRIDES),
        ):
            if recipe[field] not in allowed:
                raise ParamsError(
                    f"params.yaml: '{key}.{field}' is {recipe[field]!r}; "
                    f"allowed: {', '.join(map(str, allowed))}"
                )
        if not recipe["model"].strip():
            raise ParamsError(f"params.yaml: '{key}.model' must name a timm model")
        for field in ("learn_rate", "batch_size"):
            if recipe[field] <= 0:
                raise ParamsError(
                    f"params.yaml: '{key}.{field}' must be > 0, got {recipe[field]!r}"
                )
        for field in ("weight_decay", "warmup_epochs", "mixup_alpha", "cutmix_alpha"):
            if recipe[field] < 0:
                raise ParamsError(
                    f"params.yaml: '{key}.{field}' must be >= 0, got {recipe[field]!r}"
                )
        if not 0 <= recipe["label_smoothing"] < 1:
            raise ParamsError(
                f"params.yaml: '{key}.label_smoothing' must be in [0, 1), "
                f"got {recipe['label_smoothing']!r}"
            )
        mixing = recipe["mixup_alpha"] > 0 or recipe["cutmix_alpha"] > 0
        if mixing and recipe["batch_size"] % 2:
            raise ParamsError(
                f"params.yaml: '{key}.batch_size' must be even with mixup or cutmix "
                f"(timm mixes each batch with itself reversed), got {recipe['batch_size']!r}"
            )


def validate(params: dict) -> dict:
    """Check types, ranges and choices of every key; return params unchanged."""
    _check_types(params, SCHEMA)
    _choice(params, "optimizer", OPTIMIZERS)
    _choice(params, "googlenet.optimizer", OPTIMIZERS)
    _choice(params, "train.init", INITS)
    _choice(params, "data.protocol", PROTOCOLS)
    for section in ("train", "googlenet"):
        _choice(params, f"{section}.patience_on", PATIENCE_ON)
        _choice(params, f"{section}.keep", KEEP)
    _choice(params, "runtime.precision", PRECISIONS)
    if params["runtime"]["data_on_device"] not in (True, False, "auto"):
        raise ParamsError(
            f"params.yaml: 'runtime.data_on_device' is "
            f"{params['runtime']['data_on_device']!r}; allowed: auto, true, false"
        )
    _positive(
        params,
        "learn_rate",
        "patience",
        "drop_period",
        "drop_rate_factor",
        "data.input_size",
        "train.batch_size",
        "runtime.processes",
        "train.max_epochs",
        "train.adam_epsilon",
        "train.scale_min",
        "train.scale_max",
        "googlenet.learn_rate",
        "googlenet.new_layer_lr_factor",
        "googlenet.batch_size",
        "googlenet.max_epochs",
        "googlenet.patience",
        "googlenet.drop_period",
        "googlenet.drop_rate_factor",
        "googlenet.scale_min",
        "googlenet.scale_max",
    )
    for key in (
        "train.l2_regularization",
        "googlenet.l2_regularization",
        "runtime.num_threads",
        "train.translation_px",
        "googlenet.translation_px",
    ):
        if _get(params, key) < 0:
            raise ParamsError(f"params.yaml: '{key}' must be >= 0, got {_get(params, key)!r}")
    for key in ("train.momentum", "train.adam_beta1", "train.adam_beta2", "googlenet.momentum"):
        if not 0 <= _get(params, key) < 1:
            raise ParamsError(f"params.yaml: '{key}' must be in [0, 1), got {_get(params, key)!r}")
    if not 0 < params["data"]["val_fraction"] < 1:
        raise ParamsError(
            f"params.yaml: 'data.val_fraction' must be in (0, 1), "
            f"got {params['data']['val_fraction']!r}"
        )
    for section in ("train", "googlenet"):
        if params[section]["scale_min"] > params[section]["scale_max"]:
            raise ParamsError(
                f"params.yaml: '{section}.scale_min' must be <= '{section}.scale_max'"
            )
    for name, row in params["report_rows"].items():
        if not isinstance(row, dict):
            raise ParamsError(f"params.yaml: 'report_rows.{name}' must be a mapping")
        _check_types(row, ROW_KEYS, f"report_rows.{name}.")
    _check_recipes(params)
    for name, target in params["assumed_architectures"].items():
        if target not in params["architectures"]:
            raise ParamsError(
                f"params.yaml: 'assumed_architectures.{name}' is {target!r}, "
                "which is not a key of 'architectures'"
            )
    if not DEVICE_PATTERN.match(params["runtime"]["device"]):
        raise ParamsError(
            f"params.yaml: 'runtime.device' is {params['runtime']['device']!r}; "
            "allowed: auto, cpu, cuda, cuda:N, mps"
        )
    _choice(params, "googlenet.model", tuple(PRETRAINED_LAYERS))
    freeze = params["googlenet"]["freeze_through"]
    layers = PRETRAINED_LAYERS[params["googlenet"]["model"]]
    if freeze is not None and freeze not in layers:
        raise ParamsError(
            f"params.yaml: 'googlenet.freeze_through' is {freeze!r}; allowed for "
            f"{params['googlenet']['model']}: null, {', '.join(layers)}"
        )
    for name, layers in params["architectures"].items():
        if not isinstance(layers, list) or not all(isinstance(s, str) for s in layers):
            raise ParamsError(
                f"params.yaml: 'architectures.{name}' must be a list of layer strings"
            )
    # The network must resolve to a layer list, unless it names a recipe.
    name = None if params["network"] in params["recipes"] else architecture_name(params)
    for arch, layers in params["architectures"].items():
        # Every list must parse; the chosen one must also fit data.input_size.
        size = params["data"]["input_size"] if arch == name else 1 << 16
        try:
            parse_architecture(layers, size, NUM_CLASSES, f"architectures.{arch}")
        except ArchitectureError as err:
            hint = " (see 'data.input_size')" if arch == name and "input size" in str(err) else ""
            raise ParamsError(f"params.yaml: {err}{hint}") from None
    if name is not None and not params["train"]["scaled_input"]:
        own = network_input_size(params)
        if own != params["data"]["input_size"]:
            raise ParamsError(
                f"params.yaml: network {params['network']!r} takes {own}x{own} images (its "
                f"ImageInput layer) but 'data.input_size' is {params['data']['input_size']}; "
                f"set data.input_size={own} to train it at its own size, or "
                "train.scaled_input=true to train it at data.input_size (a scaled run, "
                "not one of the report's rows)"
            )
    return params


def architecture_name(params: dict, network: str | None = None) -> str:
    """The key in `architectures` of the layer list that `network` (default: the
    `network` param) uses: its own, or the one assumed for it."""
    network = network or params["network"]
    if network in params["architectures"]:
        return network
    if params["assumed_architectures"].get(network) in params["architectures"]:
        return params["assumed_architectures"][network]
    known = set(params["architectures"]) | set(params["assumed_architectures"])
    known = sorted(known | set(params.get("recipes", {})))
    raise ParamsError(
        f"params.yaml: 'network' is {network!r}, which has no layer list; "
        f"allowed: {', '.join(known)}"
    )


def best_report_row(params: dict) -> str:
    """The report's best row (highest published accuracy): what a recipe is set beside,
    and the input size it is queued at unless told otherwise."""
    return max(params["report_rows"], key=lambda row: params["report_rows"][row]["accuracy"])


def layer_list(params: dict) -> list[str]:
    return params["architectures"][architecture_name(params)]


def network_input_size(params: dict, network: str | None = None) -> int:
    """The input size of a report network's ImageInput layer (224 or 256); for a modern
    recipe, that of the report's best row (what it is set beside)."""
    network = network or params["network"]
    if network in params.get("recipes", {}):
        network = best_report_row(params)
    layers = params["architectures"][architecture_name(params, network)]
    return parse_layer(layers[0]).size


def load_params(path: str | Path = "params.yaml") -> dict:
    """Load and validate params.yaml; a ParamsError names the bad key."""
    path = Path(path)
    try:
        params = read_yaml(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run from the repository root)") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of keys, got {type(params).__name__}")
    return validate(params)
