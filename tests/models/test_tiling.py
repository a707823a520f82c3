"""Tiled prediction: overlapping tiles blended without seams give the untiled result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models.deep.tiling import blend_window, predict_tiled, reflect_indices, tile_starts


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny tensors: intra-op threads only contend with each other (and with parallel test runs)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_conv(seed: int = 0) -> torch.nn.Module:
    """Two 3x3 convolutions: translation-equivariant, receptive field radius 2."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(6, 2, 3, padding=1))
    return net.double().eval()


@pytest.mark.parametrize("patch, overlap", [(16, 8), (16, 12), (20, 9), (24, 15)])
def test_tiles_equal_the_whole_image_away_from_the_edges(patch, overlap):
    net = small_conv()
    image = torch.randn(3, 53, 41, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(image[None])[0]
        tiled = predict_tiled(net, image, patch, overlap, batch=5)
    assert tiled.shape == whole.shape
    r = 2  # the receptive field radius: closer to the edge the whole image saw zero padding
    torch.testing.assert_close(tiled[:, r:-r, r:-r], whole[:, r:-r, r:-r], rtol=0, atol=1e-12)


def test_constant_input_gives_a_constant_output_without_seams():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")).double().eval()
    image = torch.full((1, 70, 45), 0.7, dtype=torch.float64)
    with torch.no_grad():
        out = predict_tiled(net, image, 16, 6)
        expected = net(image[None, :, :16, :16])[0, 0, 0, 0]
    torch.testing.assert_close(out, torch.full_like(out, float(expected)), rtol=0, atol=1e-12)


def test_image_smaller_than_a_patch_is_reflect_padded():
    net = small_conv(3)
    image = np.random.default_rng(0).standard_normal((3, 5, 7))
    with torch.no_grad():
        out = predict_tiled(net, image, 16, 4)
        padded = torch.from_numpy(np.pad(image, ((0, 0), (6, 5), (5, 4)), mode="reflect"))
        ref = net(padded[None])[0, :, 6:11, 5:12].numpy()
    assert isinstance(out, np.ndarray) and out.shape == (2, 5, 7)
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_window_is_zero_in_the_margin_and_positive_inside():
    w = blend_window(16, 8)
    assert np.all(w[:2] == 0) and np.all(w[:, -2:] == 0)
    assert np.all(w[2:-2, 2:-2] > 0)
    assert np.all(blend_window(8, 0) > 0)


def test_reflect_indices_match_numpy_for_any_padding():
    for n in (1, 2, 3, 7):
        for before, after in ((0, 0), (2, 3), (9, 11)):
            ref = np.pad(np.arange(n), (before, after), mode="reflect" if n > 1 else "edge")
            np.testing.assert_array_equal(reflect_indices(n, before, after), ref)


def test_tile_starts_cover_the_axis_with_the_overlap():
    starts = tile_starts(50, 16, 6)
    assert starts[0] == 0 and starts[-1] == 50 - 16
    assert np.all(np.diff(starts) <= 10)


def test_overlap_not_smaller_than_patch_is_a_config_error():
    with pytest.raises(ConfigError, match="overlap 16"):
        predict_tiled(lambda t: t, torch.zeros(1, 20, 20), 16, 16)
