"""Block geometry of block-wise reconstruction, for both backends (docs/method.md,
'Block-wise reconstruction').

A layer whose vijp is a sequential solve (``block_axis`` "time" or "rows") cuts the axis into
blocks of ``block_size`` positions; Phase II stores, after every block but the last, the
``tail`` positions of h_out the solve of the next block reads (a boundary fragment), so that all
blocks are solved at once. Without a block size, or when one block covers the axis, the solve is
sequential and nothing is stored.
"""

from __future__ import annotations

__all__ = ["check_block_size", "boundary_blocks", "solve_blocks"]


def check_block_size(block_size: int, multiple: int, layer: str) -> None:
    """Blocks of a dilated solve hold whole chains: ``block_size`` must be a multiple of the
    dilation.

    Raises:
        ValueError: naming the layer, the block size and the dilation.
    """
    if block_size % multiple:
        raise ValueError(f"{layer}: block_size={block_size} must be a multiple of the dilation "
                         f"{multiple}")


def boundary_blocks(length: int, block_size: int | None, tail: int, multiple: int,
                    layer: str) -> int:
    """How many blocks Phase II cuts an axis of ``length`` positions into; 0 when it stores no
    boundary fragment (no block size, a block covers the axis, or the solve reads no later
    positions: ``tail == 0``)."""
    if block_size is None or block_size >= length or tail == 0:
        return 0
    check_block_size(block_size, multiple, layer)
    return -(-length // block_size)


def solve_blocks(length: int, block_size: int | None, multiple: int, layer: str
                 ) -> tuple[int, int]:
    """``(block, n_blocks)`` of Phase III's solve: the fragment's block size, or one block of
    ``length`` rounded up to a multiple of the dilation when there is no fragment."""
    if block_size is None:
        block = -(-length // multiple) * multiple
    else:
        block = block_size
        check_block_size(block, multiple, layer)
    return block, -(-length // block)
