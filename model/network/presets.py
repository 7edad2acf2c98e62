"""Shapes of the Attention U-Net: presets and their checks. No Keras here, so the CLI can check an
image size against every preset (e.g. while generating) without loading TensorFlow."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

# The published model: 7x7 convolutions, 64..512 filters on 4 levels and a 1024 bridge.
PAPER_PARAMETERS = 157_605_505
# Largest model `train` builds: about six times the paper's, 4 GB of float32 weights and as much
# again for each of Adam's two moments. Beyond it TensorFlow fails part-way with a traceback
# (`--filters 100000` asks for 6e13 parameters).
MAX_PARAMETERS = 1_000_000_000
# Deepest U-Net `train` builds: 2^16 px is the smallest input it takes. Counting the weights of a
# deeper one is a loop over its levels (`--depth` with 20 digits never ended).
MAX_DEPTH = 16


class ModelConfigError(ValueError):
    """A model configuration or input size that cannot be built."""


@dataclass(frozen=True)
class ModelConfig:
    """Shape of an Attention U-Net: base width, number of pooling levels, kernel size."""

    filters: int = 64
    depth: int = 4
    kernel_size: int = 7

    def __post_init__(self) -> None:
        for name in ("filters", "depth", "kernel_size"):
            if getattr(self, name) <= 0:
                raise ModelConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.depth > MAX_DEPTH:
            raise ModelConfigError(f"depth {self.depth} is more than the {MAX_DEPTH} levels train builds (inputs "
                                   f"would need sides of at least 2^{MAX_DEPTH} = {2**MAX_DEPTH:,} px)")
        if self.parameters > MAX_PARAMETERS:
            digits = str(self.parameters)  # no float: 20-digit filters make far more than 1e308 weights
            count = f"{self.parameters:,}" if len(digits) <= 15 else f"{digits[0]}.{digits[1:3]}e{len(digits) - 1}"
            raise ModelConfigError(
                f"filters {self.filters}, depth {self.depth} and kernel size {self.kernel_size} make a model of "
                f"{count} parameters, more than the {MAX_PARAMETERS:,} train builds (the paper model has "
                f"{PAPER_PARAMETERS:,})")

    @property
    def parameters(self) -> int:
        """Weights of the Attention U-Net of this shape (model/network/unet.py), counted without building it."""
        k = self.kernel_size

        def block(channels_in: int, filters: int) -> int:  # two (conv, batch norm with its 4 vectors)
            return k * k * filters * (channels_in + filters) + 10 * filters

        total, channels = 0, 1
        for level in range(1, self.depth + 1):
            total += block(channels, self.filters * 2 ** (level - 1))
            channels = self.filters * 2 ** (level - 1)
        gating = self.filters * 2**self.depth
        total += block(channels, gating)  # the bridge
        for level in range(self.depth, 0, -1):
            filters = self.filters * 2 ** (level - 1)
            total += filters * filters + gating * filters + 3 * filters  # attention gate: theta, phi, psi
            total += 4 * gating * filters + filters  # 2x2 transposed convolution up
            total += block(2 * filters, filters)  # after the concatenation with the gated skip
            gating = filters
        return total + self.filters + 1  # the 1x1 output convolution

    @property
    def divisor(self) -> int:
        """Input sides must be a multiple of this (one halving per level)."""
        return 2**self.depth

    def check_size(self, size: int) -> None:
        """Raise ModelConfigError unless `size` survives `depth` halvings exactly and the kernel fits in it."""
        if size <= 0 or size % self.divisor:
            raise ModelConfigError(
                f"input size {size} is not divisible by 2^depth = {self.divisor} (depth {self.depth})")
        if self.kernel_size > size:
            raise ModelConfigError(f"kernel size {self.kernel_size} is larger than the {size} px input: the "
                                   "convolution would see mostly padding")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(filters=64, depth=4, kernel_size=7),
    "small": ModelConfig(filters=16, depth=3, kernel_size=3),
    # CPU-trainable, one level deeper than small: a receptive field that spans the widest gaps.
    "medium": ModelConfig(filters=16, depth=4, kernel_size=3),
}


def model_config(preset: str = "paper", **overrides: int | None) -> ModelConfig:
    """A preset, with any of filters / depth / kernel_size replaced (None keeps the preset's)."""
    if preset not in PRESETS:
        raise ModelConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})


def untrainable_size_warning(size: int) -> str | None:
    """One warning line when a preset cannot train on `size` px images (None if every one can)."""
    divisors = {name: config.divisor for name, config in PRESETS.items()}
    refused = [name for name, divisor in divisors.items() if size % divisor]
    if not refused:
        return None
    step = max(divisors.values())  # powers of two: a multiple of the largest suits every preset
    nearest = [n for n in (size // step * step, (size // step + 1) * step) if n >= 64]
    return (f"warning: `train` refuses {size} px for the {' and '.join(refused)} preset"
            f"{'s' * (len(refused) > 1)}: sizes must be multiples of 2^depth ("
            + ", ".join(f"{divisor} for {name}" for name, divisor in divisors.items())
            + f"), e.g. {' or '.join(map(str, nearest))}")
