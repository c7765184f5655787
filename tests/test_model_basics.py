import pytest
import torch

import groupseg
from groupseg.models import GroupViT, build_config


def tiny(**overrides) -> GroupViT:
    return GroupViT(build_config("groupvit-tiny", **overrides)).eval()


def test_groupvit_s_parameter_count_matches_reference():
    model = GroupViT(build_config("groupvit-s"))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(count(model) / 1e6 - 55.7) < 0.1
    assert abs(count(model.img_encoder) / 1e6 - 28.8) < 0.1
    assert abs(count(model.text_encoder) / 1e6 - 22.1) < 0.1


def test_outputs_shapes_and_normalisation_any_input_size():
    model = tiny()
    for size in [(32, 32), (64, 64), (48, 40)]:
        out = model.forward_image(torch.randn(2, 3, *size))
        grid = (size[0] // 4, size[1] // 4)
        assert out.vision.grid == grid
        assert [a.soft.shape for a in out.vision.assignments] == [(2, 8, grid[0] * grid[1]), (2, 4, 8)]
        assert out.group_embeds.shape == (2, 4, 16)
        torch.testing.assert_close(out.image_embeds.norm(dim=-1), torch.ones(2))
        # eval assignment: exactly one group per token, at the soft argmax
        for a in out.vision.assignments:
            assert torch.equal(a.hard.sum(1), torch.ones_like(a.hard.sum(1)))
            assert torch.equal(a.hard.argmax(1), a.soft.argmax(1))


def test_training_assignment_is_hard_gumbel_with_straight_through_gradient():
    model = tiny().train()
    images = torch.randn(4, 3, 32, 32, requires_grad=True)
    out = model.forward_image(images)
    hard = out.vision.assignments[0].hard
    assert torch.allclose(hard.sum(1), torch.ones_like(hard.sum(1)))
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    out.image_embeds.sum().backward()
    assert model.img_encoder.layers[0].downsample.assign.q_proj.weight.grad.abs().sum() > 0


def test_text_tower_pools_at_end_of_text_and_validates_length():
    model = tiny()
    tokens = groupseg.tokenize(["a red circle", "a red circle and more words"], context_length=16)
    emb = model.encode_text(tokens)
    assert emb.shape == (2, 16)
    # the causal mask: appending words after the end-of-text token changes nothing before it
    padded = tokens.clone()
    padded[0, 5:] = 0
    torch.testing.assert_close(model.encode_text(padded)[0], emb[0])
    # the tower runs only up to the batch's longest text: the embeddings of the full-length pass
    full = model.text_projector(model.text_encoder(tokens))
    torch.testing.assert_close(model.encode_text(tokens, normalize=False), full)
    try:
        model.encode_text(groupseg.tokenize(["x"]))
    except ValueError as err:
        assert "context length" in str(err)
    else:
        raise AssertionError("a 77-token input to a 16-token model must fail clearly")


def test_tokenizer_is_clip_bpe_and_truncates_to_end_of_text():
    tokens = groupseg.tokenize(["a photo of a cat.", "word " * 100])
    assert tokens.shape == (2, 77) and tokens.dtype == torch.long
    assert tokens[0, 0] == 49406 and 49407 in tokens[0].tolist()
    assert tokens[1, -1] == 49407
    assert groupseg.tokenize([]).shape == (0, 77)


def test_tokenize_gives_open_clips_ids_for_plain_and_unusual_text():
    """groupseg's tokenize skips ftfy for plain ASCII and caches ids per text: the ids stay open_clip's."""
    import random
    import string

    from open_clip.tokenizer import SimpleTokenizer

    rng = random.Random(0)
    texts = ["".join(rng.choice(string.printable) for _ in range(rng.randint(0, 50))) for _ in range(300)]
    texts += [
        "Caf\u00e9 &amp; bar", " a  RED\tcircle ", "&lt;b&gt;", "\ufb01ne", "It\u2019s \u201cq\u201d", "", "w " * 40
    ]
    for context_length in (77, 16, 2):
        assert torch.equal(groupseg.tokenize(texts, context_length), SimpleTokenizer()(texts, context_length))


def test_overlapping_patches_see_their_neighbours_on_the_same_grid():
    """patch_kernel=4 with 2 px patches: the same 16 x 16 token grid, and a token changes with a pixel of its
    neighbour's patch (with patch_kernel=2 it does not)."""
    images = torch.randn(1, 3, 32, 32)
    nudged = images.clone()
    nudged[0, :, 6, 6] += 1.0  # a pixel of token (3, 3); token (2, 2) covers pixels 4-5 (kernel 2) or 3-6 (kernel 4)
    for kernel, sees in ((2, False), (4, True)):
        embed = tiny(patch_size=2, patch_kernel=kernel).img_encoder.patch_embed
        (a, grid), (b, _) = embed(images), embed(nudged)
        assert grid == (16, 16) and a.shape == (1, 256, 32)
        token = 2 * 16 + 2
        assert torch.equal(a[0, token], b[0, token]) is not sees
        assert not torch.equal(a[0, 3 * 16 + 3], b[0, 3 * 16 + 3])  # the pixel's own token, either way
    with pytest.raises(ValueError, match="even number"):
        tiny(patch_size=2, patch_kernel=3)


def test_groupseg_checkpoint_roundtrip(tmp_path):
    model = tiny()
    path = groupseg.save_checkpoint(model, tmp_path / "ckpt")
    loaded = groupseg.load_model(path)
    assert not loaded.training
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded.encode_image(x), model.encode_image(x), rtol=0, atol=0)


def test_without_group_token_residual_a_segment_holds_only_its_own_tokens():
    """group_token_residual=False: nudging tokens of other segments leaves a segment's token unchanged (with the
    reference residual it changes: its group token has cross-attended to every token)."""
    torch.manual_seed(0)
    outputs = {}
    for residual in (True, False):
        torch.manual_seed(0)
        block = GroupViT(build_config("groupvit-tiny", group_token_residual=residual)).img_encoder.layers[0].downsample
        block.eval()
        x, group_tokens = torch.randn(1, 64, 32), torch.randn(1, 8, 32)
        new_x, assignment = block(x, group_tokens)
        segment = assignment.hard[0].sum(1).argmax()  # the largest segment
        others = assignment.hard[0, segment] == 0
        nudged = x.clone()
        nudged[0, others] += 1e-3 * torch.randn(int(others.sum()), 32)
        new_nudged, assignment_nudged = block(nudged, group_tokens)
        assert torch.equal(assignment_nudged.hard, assignment.hard)
        outputs[residual] = (new_x[0, segment] - new_nudged[0, segment]).abs().max().item()
    assert outputs[False] < 1e-6 and outputs[True] > 1e-5
