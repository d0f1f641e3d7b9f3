"""Launch configurations of the fused token mixer's kernels: the tuning space the autotuner times and the kernel
report compiles. Pure Python, so selection logic and its tests need neither Triton nor a GPU."""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ['TileConfig', 'interpreter_config', 'tuning_space']


@dataclass(frozen=True)
class TileConfig:
    """One launch configuration shared by the op's kernels.

    ``block_s`` pixels x ``block_c`` channels per tile, ``num_warps`` and ``num_stages`` as in Triton, and
    ``tiles``: pixel tiles one weight-gradient program walks (the forward and input-gradient kernels do one).
    """
    block_s: int
    block_c: int
    num_warps: int = 4
    num_stages: int = 1
    tiles: int = 4

    @property
    def name(self) -> str:
        return f's{self.block_s}_c{self.block_c}_w{self.num_warps}_st{self.num_stages}_t{self.tiles}'

    def to_dict(self) -> dict:
        return asdict(self)


# Channels_last: channels are contiguous, so tiles are wide in channels. Contiguous (NCHW): pixels are contiguous,
# so tiles are long rows of pixels over a few channels. Each list is small on purpose: the autotuner times every
# entry once per new shape, and the kernel report compiles every entry for every dtype and arch.
_CHANNELS_LAST_SPACE = (
    TileConfig(64, 16, 4, 1, 8),
    TileConfig(128, 16, 8, 1, 4),
    TileConfig(32, 32, 4, 1, 8),
    TileConfig(64, 32, 8, 2, 4),
    TileConfig(16, 64, 4, 1, 8),
    TileConfig(32, 64, 8, 2, 4),
)
_CONTIGUOUS_SPACE = (
    TileConfig(256, 4, 4, 1, 4),
    TileConfig(512, 2, 4, 1, 2),
    TileConfig(1024, 1, 4, 1, 2),
    TileConfig(512, 4, 8, 2, 2),
    TileConfig(1024, 2, 8, 2, 1),
)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def tuning_space(channels_last: bool, gc: int | None = None) -> list[TileConfig]:
    """The configs timed for an input of this memory format with ``gc`` channels per branch.

    Channel blocks wider than ``next_pow2(gc)`` would only compute masked lanes, so they are narrowed and the pixel
    block widened by the same factor (the tile keeps its size); duplicates that creates are dropped. ``gc=None``
    gives the full space (what the kernel report compiles).
    """
    space = _CHANNELS_LAST_SPACE if channels_last else _CONTIGUOUS_SPACE
    if gc is None:
        return list(space)
    cap = _next_pow2(gc)
    out: list[TileConfig] = []
    for cfg in space:
        block_c = min(cfg.block_c, cap)
        fitted = TileConfig(cfg.block_s * cfg.block_c // block_c, block_c, cfg.num_warps, cfg.num_stages, cfg.tiles)
        if fitted not in out:
            out.append(fitted)
    return out


def interpreter_config(gc: int) -> TileConfig:
    """The config for Triton's CPU interpreter: small tiles, since it runs every lane in Python (and reductions
    lane by lane), and one chunk per image for small test inputs."""
    return TileConfig(64, min(4, _next_pow2(gc)), 1, 1, 16)
