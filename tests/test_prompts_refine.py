"""PAMR (groupseg.prompts.refine): the reference's formula computed directly, a group edge moved onto the image's
edge, the same at a working size below a large image's, and GroupPredictor's refine option."""
import numpy as np
import pytest
import torch

from groupseg.prompts import GroupPredictor
from groupseg.prompts.refine import dilations_for, pamr, refine_maps


def direct_pamr_step(image: np.ndarray, maps: np.ndarray, dilations) -> np.ndarray:
    """One PAMR iteration pixel by pixel, as Araslanov & Roth define it: weights = softmax over the neighbours q of
    mean_c -|I_c(p) - I_c(q)| / (0.1 σ_c(p)), σ over the 3×3 windows of all dilations (centres included)."""
    channels, height, width = image.shape
    out = np.zeros_like(maps)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    for y in range(height):
        for x in range(width):
            def at(array, d, dy, dx):  # edge replicated
                return array[:, min(max(y + dy * d, 0), height - 1), min(max(x + dx * d, 0), width - 1)]

            around = [at(image, d, dy, dx) for d in dilations for dy, dx in offsets]
            window = [image[:, y, x] for _ in dilations] + around
            sigma = np.std(np.stack(window), axis=0, ddof=1)
            logits = np.array([np.mean(-np.abs(image[:, y, x] - at(image, d, dy, dx)) / (1e-8 + 0.1 * sigma))
                               for d in dilations for dy, dx in offsets])  # fmt: skip
            weights = np.exp(logits - logits.max())
            weights /= weights.sum()
            neighbours = [at(maps, d, dy, dx) for d in dilations for dy, dx in offsets]
            out[:, y, x] = sum(w * n for w, n in zip(weights, neighbours))
    return out


def test_pamr_equals_the_direct_computation():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 6, 7)).astype(np.float32)
    maps = rng.dirichlet(np.ones(4), size=(6, 7)).transpose(2, 0, 1).astype(np.float32)
    got = pamr(torch.from_numpy(image)[None], torch.from_numpy(maps)[None], iterations=1, dilations=(1, 2))[0]
    np.testing.assert_allclose(got.numpy(), direct_pamr_step(image, maps, (1, 2)), atol=1e-5)


def edge_image_and_late_maps(height: int, width: int, edge: int, late: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Red left of column ``edge``, blue from it; two groups whose soft boundary sits at column ``late``."""
    image = torch.zeros(1, 3, height, width)
    image[0, 0, :, :edge] = 1.0
    image[0, 2, :, edge:] = 1.0
    image += 0.01 * torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    left = torch.sigmoid((late - 0.5 - torch.arange(width, dtype=torch.float32)) / (width / 16)).expand(height, width)
    return image, torch.stack([left, 1 - left])[None]


def test_pamr_moves_a_group_edge_onto_the_image_edge():
    image, maps = edge_image_and_late_maps(16, 16, edge=8, late=11)  # the groups' edge 3 px (a token and a half) late
    assert (maps[0].argmax(0) == 0).sum(1).tolist() == [11] * 16
    refined = pamr(image, maps)
    assert (refined[0].argmax(0) == 0).sum(1).tolist() == [8] * 16
    assert torch.allclose(refined.sum(1), torch.ones(1, 16, 16), atol=1e-5) and refined.min() >= 0


def test_large_images_are_refined_at_the_working_size_and_come_back_at_their_own():
    image, maps = edge_image_and_late_maps(192, 320, edge=120, late=136)  # a 16-px token late
    refined = refine_maps(image, maps, token=16, max_side=64)
    assert refined.shape == maps.shape
    columns = (refined[0].argmax(0) == 0).sum(1)
    assert (columns - 120).abs().max() <= 320 / 64  # within one working pixel of the image's edge (was 16 px off)


def test_dilations_keep_tcl_s_reach_in_tokens():
    assert dilations_for(16) == (1, 2, 4, 8, 12, 24)  # TCL's own: 16-px tokens (ViT-B/16 at 448 px)
    assert dilations_for(2) == (1, 2, 4, 8)  # the synthetic world: 2-px tokens, at most 4 tokens away
    assert dilations_for(16 * 128 / 448) == (1, 2, 4, 8, 12)  # GroupViT-S at 448 px, refined at 128 px
    assert dilations_for(0.1) == (1,)


def test_refine_maps_refines_with_the_dilations_of_its_tokens():
    image, maps = edge_image_and_late_maps(24, 24, edge=10, late=13)
    small_tokens = refine_maps(image, maps, token=2)
    torch.testing.assert_close(small_tokens, pamr(image, maps, dilations=(1, 2, 4, 8)))
    assert not torch.allclose(small_tokens, refine_maps(image, maps))  # TCL's pixel dilations: another result


@pytest.mark.parametrize("grid, dilations", [((4, 4), (1, 2, 4, 8, 12)), ((8, 8), (1, 2, 4, 8))])
def test_the_predictor_refines_with_its_token_size(grid, dilations):
    """Groups over a grid seen at 16 × 16 px: 4 × 4 tokens of 4 px reach 16 px, 8 × 8 tokens of 2 px reach 8."""
    rng = np.random.default_rng(0)
    soft = torch.from_numpy(rng.dirichlet(np.ones(3), size=grid[0] * grid[1]).T.astype(np.float32))  # [3, tokens]
    image = torch.from_numpy(rng.normal(size=(1, 3, 16, 16)).astype(np.float32))
    predictor = GroupPredictor(None)
    predictor.set_assignments([soft], grid, input_size=(16, 16))
    raw = torch.from_numpy(predictor.levels[0].maps)[None]
    predictor.set_assignments([soft], grid, input_size=(16, 16), image=image)
    np.testing.assert_allclose(predictor.levels[0].maps, pamr(image, raw, dilations=dilations)[0].numpy(), atol=1e-6)


def test_the_predictor_refines_its_soft_maps_unless_told_not_to(sharp_tiny_model):
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :13] = (220, 30, 30)
    image[:, 13:] = (30, 30, 220)
    raw, refined = GroupPredictor(sharp_tiny_model, refine="none"), GroupPredictor(sharp_tiny_model)
    raw.set_image(image)
    refined.set_image(image)
    for a, b in zip(raw.levels, refined.levels):
        assert a.maps.shape == b.maps.shape and not np.allclose(a.maps, b.maps)
        np.testing.assert_allclose(b.maps.sum(0), 1, atol=1e-5)
    with pytest.raises(ValueError, match="refine must be one of"):
        GroupPredictor(sharp_tiny_model, refine="crf")
