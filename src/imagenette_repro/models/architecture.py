"""The report's layer notation ("Conv, 3x3, 64", "MaxPool, 2x2", ...), parsed and checked.

Pure Python, so params can be checked before torch is even imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError

NOTATION_HELP = (
    "'ImageInput, HxW', 'Conv, KxK, N', 'MaxPool, 2x2', 'AvgPool, 2x2', 'Dropout, P', "
    "'FullyConnected, N', 'SoftMax', 'ClassOutput, N'"
)

_PATTERNS = {
    "input": re.compile(r"^ImageInput,\s*(\d+)x(\d+)$"),
    "conv": re.compile(r"^Conv,\s*(\d+)x(\d+),\s*(\d+)$"),
    "maxpool": re.compile(r"^MaxPool,\s*(\d+)x(\d+)$"),
    "avgpool": re.compile(r"^AvgPool,\s*(\d+)x(\d+)$"),
    "dropout": re.compile(r"^Dropout,\s*([0-9]*\.?[0-9]+)$"),
    "fc": re.compile(r"^FullyConnected,\s*(\d+)$"),
    "softmax": re.compile(r"^SoftMax$"),
    "output": re.compile(r"^ClassOutput,\s*(\d+)$"),
}


class ArchitectureError(UserError, ValueError):
    """A layer list that cannot be parsed or cannot work at the chosen input size."""


@dataclass(frozen=True)
class Layer:
    kind: str  # input | conv | maxpool | avgpool | dropout | fc | softmax | output
    size: int = 0  # kernel or pool size, input side, or FC / output width
    channels: int = 0  # conv filters
    rate: float = 0.0  # dropout probability


def parse_layer(text: str) -> Layer:
    """One layer string of the report's notation -> Layer."""
    text = text.strip()
    for kind, pattern in _PATTERNS.items():
        match = pattern.match(text)
        if not match:
            continue
        groups = match.groups()
        if kind in ("input", "conv", "maxpool", "avgpool") and groups[0] != groups[1]:
            raise ArchitectureError(f"layer {text!r}: only square sizes are supported")
        if kind == "input":
            return Layer(kind, size=int(groups[0]))
        if kind == "conv":
            return Layer(kind, size=int(groups[0]), channels=int(groups[2]))
        if kind in ("maxpool", "avgpool"):
            return Layer(kind, size=int(groups[0]))
        if kind == "dropout":
            rate = float(groups[0])
            if not 0 <= rate < 1:
                raise ArchitectureError(f"layer {text!r}: dropout rate must be in [0, 1)")
            return Layer(kind, rate=rate)
        if kind in ("fc", "output"):
            return Layer(kind, size=int(groups[0]))
        return Layer(kind)
    raise ArchitectureError(f"unknown layer {text!r}; expected one of {NOTATION_HELP}")


def without_dropout(layers: list[str]) -> list[str]:
    """The layer list with its Dropout layers left out (params `train.dropout: false`)."""
    return [text for text in layers if parse_layer(text).kind != "dropout"]


def parse_architecture(
    layers: list[str], input_size: int, num_classes: int = 10, name: str = "architecture"
) -> list[Layer]:
    """Parse a layer list and check it can run at `input_size` with `num_classes` outputs.

    The check follows the shapes through the network: every pooling must have at least
    its window left, every convolution comes before the fully connected part, and the
    last fully connected layer must have `num_classes` outputs.
    """
    try:
        parsed = [parse_layer(text) for text in layers]
    except ArchitectureError as err:
        raise ArchitectureError(f"{name}: {err}") from None
    if not parsed or parsed[0].kind != "input":
        raise ArchitectureError(f"{name}: must start with 'ImageInput, HxW'")
    if [layer.kind for layer in parsed].count("input") != 1:
        raise ArchitectureError(f"{name}: exactly one ImageInput layer is allowed")
    side, seen_fc, last_width = input_size, False, None
    for text, layer in zip(layers, parsed, strict=True):
        if layer.kind in ("conv", "maxpool", "avgpool") and seen_fc:
            raise ArchitectureError(f"{name}: {text!r} comes after a FullyConnected layer")
        if layer.kind in ("maxpool", "avgpool"):
            if side < layer.size:
                raise ArchitectureError(
                    f"{name}: input size {input_size} is too small: {text!r} gets a "
                    f"{side}x{side} map; use an input size that stays >= {layer.size} "
                    f"before every pooling"
                )
            side = (side - layer.size) // 2 + 1  # stride 2
        if layer.kind == "fc":
            seen_fc, last_width = True, layer.size
        if layer.kind == "output" and layer.size != num_classes:
            raise ArchitectureError(f"{name}: {text!r} must have {num_classes} classes")
    if last_width != num_classes:
        raise ArchitectureError(
            f"{name}: the last FullyConnected layer must have {num_classes} outputs, "
            f"got {last_width}"
        )
    return parsed
