"""Scratch buffers and haloed activations (Note: [scratch buffers]) and memory-order masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from moonwalk_core.torch._containers import pack_mask
from moonwalk_core.torch._workspace import halo_empty_like, left_padded, scratch


def _time_major(*shape: int) -> torch.Tensor:
    b, c, t = shape
    return torch.randn(b, t, c, dtype=torch.float64).transpose(1, 2)


def test_left_padded_outside_scratch_is_plain_padding() -> None:
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(left_padded(x, 2), F.pad(x, (0, 0, 2, 0)), rtol=0, atol=0)


def test_left_padded_reuses_one_buffer_per_shape_under_no_grad() -> None:
    a, b = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    with torch.no_grad(), scratch():
        pa = left_padded(a, 2)
        ptr = pa.data_ptr()
        torch.testing.assert_close(pa, F.pad(a, (0, 0, 2, 0)), rtol=0, atol=0)
        pb = left_padded(b, 2)
        assert pb.data_ptr() == ptr  # the same buffer, now holding b
        torch.testing.assert_close(pb, F.pad(b, (0, 0, 2, 0)), rtol=0, atol=0)
    with scratch():  # autograd on: a fresh tensor that autograd may save
        assert left_padded(a.requires_grad_(), 2).data_ptr() != ptr


def test_halo_outputs_are_read_in_place_with_zero_steps_in_front() -> None:
    x = _time_major(2, 3, 5)
    assert halo_empty_like(x) is None  # outside scratch
    with torch.no_grad(), scratch(halo=0):
        assert halo_empty_like(x) is None
    with torch.no_grad(), scratch(halo=2):
        out = halo_empty_like(x)
        assert out.shape == x.shape and out.transpose(1, 2).stride() == (7 * 3, 3, 1)
        out.copy_(x)
        padded = left_padded(out.transpose(1, 2), 2)
        assert padded.data_ptr() == out.transpose(1, 2).data_ptr() - 2 * 3 * 8  # no copy
        torch.testing.assert_close(padded, F.pad(x.transpose(1, 2), (0, 0, 2, 0)), rtol=0,
                                   atol=0)
        # another pad size is not this buffer's: a copy with its own zeros
        torch.testing.assert_close(left_padded(out.transpose(1, 2), 1),
                                   F.pad(x.transpose(1, 2), (0, 0, 1, 0)), rtol=0, atol=0)


def test_a_foreign_tensor_with_the_same_strides_is_copied_not_trusted() -> None:
    # a slice after nonzero steps has exactly a halo tensor's strides, but its "halo" is data
    full = torch.randn(2, 7, 3)
    x_tm = full[:, 2:]
    with torch.no_grad(), scratch(halo=2):
        padded = left_padded(x_tm, 2)
    assert padded[:, :2].abs().max() == 0
    torch.testing.assert_close(padded[:, 2:], x_tm, rtol=0, atol=0)


def test_halo_buffers_are_reused_only_once_nothing_shares_them() -> None:
    x = _time_major(2, 3, 5)
    with torch.no_grad(), scratch(halo=2):
        a = halo_empty_like(x)
        b = halo_empty_like(x)
        assert a.data_ptr() != b.data_ptr()
        kept, ptr = a[0], a.data_ptr()  # a view keeps a's buffer in use
        del a
        c = halo_empty_like(x)
        assert c.data_ptr() != ptr
        del kept
        d = halo_empty_like(x)
        assert d.data_ptr() == ptr
        assert left_padded(d.transpose(1, 2), 2)[:, :2].abs().max() == 0  # halo still zero


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("layout", ["contiguous", "time-major", "strided"])
def test_sign_masks_keep_their_layout_and_values(packed: bool, layout: str) -> None:
    x = {"contiguous": torch.randn(2, 3, 13), "time-major": _time_major(2, 3, 13),
         "strided": torch.randn(2, 3, 26)[..., ::2]}[layout]
    mask = x <= 0
    res = pack_mask(mask, packed)
    assert torch.equal(res.unpack(), mask)
    factor = res.factor(0.5, 1.0, x)
    torch.testing.assert_close(factor, torch.where(mask, 0.5, 1.0).to(x.dtype), rtol=0, atol=0)
    if packed and layout != "strided":
        assert factor.stride() == x.stride()  # elementwise ops with x stay in x's layout
        assert res.bits.numel() == -(-x.numel() // 8)
