"""The one typed config: params.yaml read and checked before any heavy work starts.
pydantic models say each key's type, range and choices; the checks between keys follow
them in `validate`; the stages get the checked `Params` object, never the raw mapping."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from .data.classes import NUM_CLASSES
from .errors import UserError
from .models.architecture import ArchitectureError, parse_architecture, parse_layer

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
Optimizer = Literal["sgdm", "adam"]
PatienceOn = Literal["loss", "accuracy"]  # see training.EarlyStopping
Keep = Literal["final", "best_loss", "best_accuracy"]  # which epoch's weights a run keeps
Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS = get_args(Precision)
PositiveInt = Annotated[int, Field(gt=0)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


def _interval(text: str, inside: Callable[[float], bool]) -> AfterValidator:
    def check(value: float) -> float:
        if not inside(value):
            raise PydanticCustomError("interval", f"must be in {text}")
        return value

    return AfterValidator(check)


Fraction = Annotated[float, _interval("[0, 1)", lambda value: 0 <= value < 1)]
CropArea = Annotated[float, _interval("(0, 1]", lambda value: 0 < value <= 1)]
Betas = Annotated[list[Fraction], Field(min_length=2, max_length=2)]


class _Section(BaseModel):
    # strict: a `true` or a "4" where a number belongs is a mistake, not a value to convert
    model_config = ConfigDict(extra="forbid", strict=True)


class DataParams(_Section):
    archive: str
    md5: str | None
    protocol: Literal["val_folder", "train_split"]  # see data.split_dataset
    val_fraction: Annotated[float, _interval("(0, 1)", lambda value: 0 < value < 1)]
    input_size: PositiveInt
    skip_bad_images: bool


class _Augmentation(_Section):
    scale_min: Positive
    scale_max: Positive
    translation_px: NonNegative
    reflection: bool


class TrainParams(_Augmentation):
    batch_size: PositiveInt
    max_epochs: PositiveInt
    momentum: Fraction
    adam_beta1: Fraction
    adam_beta2: Fraction
    adam_epsilon: Positive
    l2_regularization: NonNegative
    init: Literal["normal_0.01", "glorot", "torch_default"]
    patience_on: PatienceOn
    keep: Keep
    scaled_input: bool
    dropout: bool


class GoogLeNetParams(_Augmentation):
    model: Literal[tuple(PRETRAINED_LAYERS)]  # type: ignore[valid-type]
    weights: str
    freeze_through: str | None
    optimizer: Optimizer
    learn_rate: Positive
    new_layer_lr_factor: Positive
    batch_size: PositiveInt
    max_epochs: PositiveInt
    patience: PositiveInt | None
    patience_on: PatienceOn
    keep: Keep
    drop_period: PositiveInt
    drop_rate_factor: Positive
    momentum: Fraction
    l2_regularization: NonNegative


class RuntimeParams(_Section):
    device: str
    num_threads: Annotated[int, Field(ge=0)]
    processes: PositiveInt
    channels_last: bool
    precision: Precision
    compile: bool
    data_on_device: bool | Literal["auto"]
    cudnn_benchmark: bool


class ReportRow(_Section):
    """A row of the report's table: its columns and its published accuracy."""

    optimizer: str
    learn_rate: float
    patience: int
    drop_period: int
    drop_rate_factor: float
    image_augmentation: bool
    accuracy: float


# The report's table columns: what makes a run one of the report's rows.
ROW_COLUMNS = tuple(name for name in ReportRow.model_fields if name != "accuracy")


class Recipe(_Section):
    """A modern recipe: a timm model and its training, in place of the report's columns."""

    model: str
    stem_stride: Literal[1, 2, 4]
    optimizer: Literal["adamw", "sgd_nesterov", "ranger"]
    learn_rate: Positive
    weight_decay: NonNegative
    schedule: Literal["cosine", "onecycle", "flat_cos"]
    warmup_epochs: NonNegative
    label_smoothing: Fraction
    mixup_alpha: NonNegative
    cutmix_alpha: NonNegative
    batch_size: PositiveInt
    augmentation: bool
    # null: the report's augmentation (train.scale_*, train.translation_px); a number:
    # random-resized crops of [crop_area_min, 1] of the image's area instead.
    crop_area_min: CropArea | None
    reflection: bool
    # Options with a default (today's behaviour): a recipe may leave them out.
    flat_fraction: Fraction = 0.75  # flat_cos: the share of all steps at the peak rate
    betas: Betas | None = None  # adamw, ranger; null: train.adam_beta1, train.adam_beta2
    eps: Positive | None = None  # adamw, ranger; null: train.adam_epsilon
    input_scaling: Literal["imagenet", "none"] = "imagenet"
    model_args: dict[str, Any] = Field(default_factory=dict)  # to timm.create_model
    # The network's input side, at most data.input_size (null: data.input_size): from a
    # larger store, crops and resizes keep more detail.
    train_size: PositiveInt | None = None
    val_crop: CropArea = 1.0  # validation: the centre share of the side, resized to train_size

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An option a recipe leaves out stays out of its dump (the model's record, the
        # run's fingerprint, the comparison with a recorded run's params): a recipe
        # written before the option existed dumps as it did then.
        dumped = handler(self)
        return {key: value for key, value in dumped.items() if key in self.model_fields_set}


class Params(_Section):
    seed: int
    network: str
    optimizer: Optimizer
    learn_rate: Positive
    patience: PositiveInt
    drop_period: PositiveInt
    drop_rate_factor: Positive
    image_augmentation: bool
    data: DataParams
    train: TrainParams
    googlenet: GoogLeNetParams
    runtime: RuntimeParams
    report_rows: dict[str, ReportRow]
    report_googlenet_accuracy: float
    assumed_architectures: dict[str, str]
    architectures: dict[str, Any]  # each a list of layer strings: checked in validate
    recipes: dict[str, Recipe]

    @property
    def is_recipe(self) -> bool:
        """Whether `network` names a modern recipe (else one of the report's networks)."""
        return self.network in self.recipes

    @property
    def recipe(self) -> Recipe:
        """The modern recipe `network` names."""
        return self.recipes[self.network]

    @property
    def row_columns(self) -> dict[str, Any]:
        """The report's table columns as this run sets them."""
        return {key: getattr(self, key) for key in ROW_COLUMNS}

    def architecture_name(self, network: str | None = None) -> str:
        """The key in `architectures` of the layer list that `network` (default: the
        `network` param) uses: its own, or the one assumed for it."""
        network = network or self.network
        if network in self.architectures:
            return network
        if self.assumed_architectures.get(network) in self.architectures:
            return self.assumed_architectures[network]
        known = set(self.architectures) | set(self.assumed_architectures) | set(self.recipes)
        raise ParamsError(
            f"params.yaml: 'network' is {network!r}, which has no layer list; "
            f"allowed: {', '.join(sorted(known))}"
        )

    def layer_list(self, network: str | None = None) -> list[str]:
        return self.architectures[self.architecture_name(network)]

    def best_report_row(self) -> str:
        """The report's best row (highest published accuracy): what a recipe is set
        beside, and the input size it is queued at unless told otherwise."""
        return max(self.report_rows, key=lambda row: self.report_rows[row].accuracy)

    def network_input_size(self, network: str | None = None) -> int:
        """The input size of a report network's ImageInput layer (224 or 256); for a
        modern recipe, that of the report's best row (what it is set beside)."""
        network = network or self.network
        if network in self.recipes:
            network = self.best_report_row()
        return parse_layer(self.layer_list(network)[0]).size


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


# How a wrong type is named in a message.
_TYPE_NAMES = {
    "int_type": "integer",
    "float_type": "number",
    "bool_type": "true/false",
    "string_type": "string",
    "none_required": "null",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}


def _key(params: dict, location: tuple) -> tuple[str, ...]:
    """The part of a pydantic error's location that is a key of params.yaml (what follows
    names a member of a union type, such as `bool` in `bool | "auto"`)."""
    value: Any = params
    key = []
    for part in location:
        if not isinstance(value, dict):
            break
        key.append(str(part))
        value = value.get(part)
    return tuple(key)


def _annotation(key: tuple[str, ...]) -> Any:
    """The type that the key `key` of params.yaml must have (a model for a section)."""
    annotation: Any = Params
    for part in key:
        if get_origin(annotation) is dict:  # a named entry: report_rows.NAME, recipes.NAME
            annotation = get_args(annotation)[1]
        else:
            annotation = annotation.model_fields[part].annotation
    return annotation


def _explain(params: dict, failure: ValidationError) -> ParamsError:
    """The first of pydantic's errors as one line that names the key, what it must be and
    what it is."""
    errors = failure.errors()
    key = _key(params, errors[0]["loc"])
    name = ".".join(key)
    errors = [error for error in errors if _key(params, error["loc"]) == key]
    kind, value = errors[0]["type"], errors[0]["input"]
    if kind == "missing":
        text = f"missing key '{name}'"
    elif kind == "extra_forbidden":
        allowed = ", ".join(sorted(_annotation(key[:-1]).model_fields))
        text = f"unknown key '{name}' (allowed: {allowed})"
    elif len(errors) > 1 or kind in _TYPE_NAMES:  # a wrong type, or no member of a union fits
        names = [_TYPE_NAMES.get(e["type"]) or e["ctx"]["expected"] for e in errors]
        if type(None) in get_args(_annotation(key)):  # pydantic names only the other type
            names.append("null")
        text = f"'{name}' must be {' or '.join(names)}, got {value!r}"
    elif kind == "literal_error":
        allowed = ", ".join(map(str, get_args(_annotation(key))))
        text = f"'{name}' is {value!r}; allowed: {allowed}"
    elif kind in ("greater_than", "greater_than_equal"):
        bound = errors[0]["ctx"].get("gt", errors[0]["ctx"].get("ge"))
        text = f"'{name}' must be {'>' if kind == 'greater_than' else '>='} {bound}, got {value!r}"
    elif kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        length = errors[0]["ctx"]["min_length" if kind == "too_short" else "max_length"]
        text = f"'{name}' must have {bound} {length} items, got {value!r}"
    elif kind == "interval":
        text = f"'{name}' {errors[0]['msg']}, got {value!r}"
    else:
        text = f"'{name}': {errors[0]['msg']}, got {value!r}"
    return ParamsError(f"params.yaml: {text}")


def _check_recipes(params: Params) -> None:
    taken = set(params.report_rows) | set(params.architectures)
    taken |= set(params.assumed_architectures)
    for name, recipe in params.recipes.items():
        key = f"recipes.{name}"
        if name in taken:
            raise ParamsError(
                f"params.yaml: '{key}' has the name of a report row or layer list; "
                "give the recipe its own name"
            )
        if not recipe.model.strip():
            raise ParamsError(f"params.yaml: '{key}.model' must name a timm model")
        mixing = recipe.mixup_alpha > 0 or recipe.cutmix_alpha > 0
        if mixing and recipe.batch_size % 2:
            raise ParamsError(
                f"params.yaml: '{key}.batch_size' must be even with mixup or cutmix "
                f"(timm mixes each batch with itself reversed), got {recipe.batch_size!r}"
            )
    if params.is_recipe and params.recipe.model_args:
        _check_model_args(f"recipes.{params.network}", params.recipe)
    if params.is_recipe and (params.recipe.train_size or 0) > params.data.input_size:
        raise ParamsError(
            f"params.yaml: 'recipes.{params.network}.train_size' is "
            f"{params.recipe.train_size}, larger than the stored images' side "
            f"'data.input_size' {params.data.input_size}; expected at most that (a network "
            "input is never upsampled from the store)"
        )


def timm_model_args(model_args: dict[str, Any]) -> dict[str, Any]:
    """A recipe's model_args as timm.create_model takes them. timm's ResNet stem needs the
    class of `aa_layer`, not a name: "blurpool" becomes timm's BlurPool2d (in the stem a
    stride-1 max-pool, then the blur: MaxBlurPool), "avgpool" torch's AvgPool2d. A
    ValueError says what is wrong."""
    import timm.layers
    from torch import nn

    args = dict(model_args)
    activation = args.get("act_layer")
    if isinstance(activation, str):
        try:
            timm.layers.get_act_layer(activation)
        except KeyError:
            raise ValueError(
                f"act_layer {activation!r} is not one of timm's activations "
                "(timm.layers.get_act_layer: relu, mish, silu, gelu, ...)"
            ) from None
    aa_layer = args.get("aa_layer")
    if aa_layer is not None:
        classes = {"blurpool": timm.layers.BlurPool2d, "avgpool": nn.AvgPool2d}
        if not isinstance(aa_layer, str) or aa_layer not in classes:
            raise ValueError(f"aa_layer is {aa_layer!r}; allowed: null, {', '.join(classes)}")
        args["aa_layer"] = classes[aa_layer]
    return args


def _check_model_args(key: str, recipe: Recipe) -> None:
    """Build the chosen recipe's timm model once (a fraction of a second): every argument
    of model_args must be one the model takes, with a value it accepts."""
    import timm

    if not timm.is_model(recipe.model):
        raise ParamsError(
            f"params.yaml: '{key}.model' is {recipe.model!r}, not a timm model (timm.list_models())"
        )
    try:
        timm.create_model(
            recipe.model,
            pretrained=False,
            num_classes=NUM_CLASSES,
            **timm_model_args(recipe.model_args),
        )
    except (TypeError, ValueError, KeyError, AssertionError) as err:
        reason = str(err).strip("'\"") or type(err).__name__
        raise ParamsError(
            f"params.yaml: '{key}.model_args' does not fit timm's {recipe.model}: {reason}"
        ) from None


def _check_architectures(params: Params) -> None:
    for name, target in params.assumed_architectures.items():
        if target not in params.architectures:
            raise ParamsError(
                f"params.yaml: 'assumed_architectures.{name}' is {target!r}, "
                "which is not a key of 'architectures'"
            )
    for name, layers in params.architectures.items():
        if not isinstance(layers, list) or not all(isinstance(s, str) for s in layers):
            raise ParamsError(
                f"params.yaml: 'architectures.{name}' must be a list of layer strings"
            )
    # The network must resolve to a layer list, unless it names a recipe.
    name = None if params.is_recipe else params.architecture_name()
    for arch, layers in params.architectures.items():
        # Every list must parse; the chosen one must also fit data.input_size.
        size = params.data.input_size if arch == name else 1 << 16
        try:
            parse_architecture(layers, size, NUM_CLASSES, f"architectures.{arch}")
        except ArchitectureError as err:
            hint = " (see 'data.input_size')" if arch == name and "input size" in str(err) else ""
            raise ParamsError(f"params.yaml: {err}{hint}") from None
    if name is not None and not params.train.scaled_input:
        own = params.network_input_size()
        if own != params.data.input_size:
            raise ParamsError(
                f"params.yaml: network {params.network!r} takes {own}x{own} images (its "
                f"ImageInput layer) but 'data.input_size' is {params.data.input_size}; "
                f"set data.input_size={own} to train it at its own size, or "
                "train.scaled_input=true to train it at data.input_size (a scaled run, "
                "not one of the report's rows)"
            )


def validate(raw: dict) -> Params:
    """Check types, ranges and choices of every key, then the keys against each other;
    the checked params as one typed object."""
    try:
        params = Params.model_validate(raw)
    except ValidationError as failure:
        raise _explain(raw, failure) from None
    for section in ("train", "googlenet"):
        augmentation = getattr(params, section)
        if augmentation.scale_min > augmentation.scale_max:
            raise ParamsError(
                f"params.yaml: '{section}.scale_min' must be <= '{section}.scale_max'"
            )
    _check_recipes(params)
    if not DEVICE_PATTERN.match(params.runtime.device):
        raise ParamsError(
            f"params.yaml: 'runtime.device' is {params.runtime.device!r}; "
            "allowed: auto, cpu, cuda, cuda:N, mps"
        )
    freeze = params.googlenet.freeze_through
    layers = PRETRAINED_LAYERS[params.googlenet.model]
    if freeze is not None and freeze not in layers:
        raise ParamsError(
            f"params.yaml: 'googlenet.freeze_through' is {freeze!r}; allowed for "
            f"{params.googlenet.model}: null, {', '.join(layers)}"
        )
    _check_architectures(params)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
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
