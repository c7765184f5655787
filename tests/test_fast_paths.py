"""The speed paths compute what the plain paths compute: bf16 CPU attention, the text tower's attention, the
grouping block's folded projections, bf16 inference with pre-cast weights (assignments and embeddings still fp32),
and the compiled segmentor."""
import copy
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import groupseg

from groupseg.models.grouping import AssignAttention
from groupseg.models.layers import BF16_CPU_CHUNK_FROM, CrossAttention, _split_heads, attention, merge_heads
from groupseg.models.precision import cast_matmul_weights_
from groupseg.models.text import TextSelfAttention
from groupseg.zeroshot import GroupViTSegmentor

CLASSES = ["background", "cat", "dog", "grass", "sky", "car"]


def qkv(batch, heads, length, dim=16, requires_grad=False):
    return [torch.randn(batch, heads, length, dim, requires_grad=requires_grad) for _ in range(3)]


@pytest.mark.parametrize("length, causal", [(40, False), (20, True), (BF16_CPU_CHUNK_FROM + 30, False)])
def test_bf16_cpu_attention_matches_fp32_sdpa_forward_and_backward(length, causal):
    """The plain bf16 path: in one go, masked, and in row chunks (the last case) with a partial last chunk."""
    q, k, v = qkv(2, 3, length, requires_grad=True)
    mask = torch.full((length, length), float("-inf")).triu(1) if causal else None
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    low = [t.detach().bfloat16().requires_grad_() for t in (q, k, v)]
    got = attention(*low, mask=mask)
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    # eager bf16 arithmetic (scores rounded to bf16): within 3× the error of PyTorch's fused bf16 kernel
    fused = F.scaled_dot_product_attention(*low, attn_mask=mask)
    assert (got.float() - expected).abs().mean() < 3 * (fused.float() - expected).abs().mean() + 1e-4
    weights = torch.randn_like(expected)
    (expected * weights).sum().backward()
    (got.float() * weights).sum().backward()
    for ref, ours in zip((q, k, v), low):
        torch.testing.assert_close(ours.grad.float(), ref.grad, atol=6e-2, rtol=6e-2)


def test_fp32_attention_is_exactly_sdpa():
    q, k, v = qkv(2, 3, 500)
    assert torch.equal(attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_text_self_attention_is_the_multihead_attention_it_replaces():
    mha = nn.MultiheadAttention(32, 4, batch_first=True)
    fast = TextSelfAttention(mha)
    assert dict(fast.named_parameters()).keys() == dict(mha.named_parameters()).keys()
    assert all(a is b for a, b in zip(fast.parameters(), mha.parameters()))  # the same tensors, not copies
    x = torch.randn(3, 10, 32)
    mask = torch.full((10, 10), float("-inf")).triu(1)
    expected = mha(x, x, x, need_weights=False, attn_mask=mask)[0]
    torch.testing.assert_close(fast(x, x, x, need_weights=False, attn_mask=mask)[0], expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="batch-first"):
        TextSelfAttention(nn.MultiheadAttention(32, 4))


@pytest.fixture(scope="module")
def model(sharp_tiny_model):
    return sharp_tiny_model


@pytest.mark.parametrize("heads, groups, tokens, dim", [(3, 4, 256, 96), (6, 8, 64, 384), (6, 64, 196, 384)])
def test_grouping_attention_with_folded_projections_is_the_textbook_one(heads, groups, tokens, dim):
    """Cross-attention and the assignment fold k_proj into the group queries and apply v_proj after pooling (when
    that is cheaper; the last case is GroupViT-S's first stage, which keeps the plain path): the same outputs and
    gradients as projecting every token, biases included (float64, so only the algebra is compared)."""
    torch.manual_seed(0)
    cross = CrossAttention(dim, heads).double()
    assign = AssignAttention(dim, gumbel=False).double()
    for layer in (cross.k_proj, cross.v_proj, assign.k_proj, assign.v_proj):
        nn.init.normal_(layer.bias)  # non-zero biases: the folding must carry them
    query = torch.randn(2, groups, dim, dtype=torch.float64)
    key = torch.randn(2, tokens, dim, dtype=torch.float64, requires_grad=True)

    q = _split_heads(cross.q_proj(query), heads)
    k, v = _split_heads(cross.k_proj(key), heads), _split_heads(cross.v_proj(key), heads)
    expected = cross.proj(merge_heads(attention(q, k, v)))
    torch.testing.assert_close(cross(query, key), expected, rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad(cross(query, key).square().sum(), key)
    torch.testing.assert_close(grad, torch.autograd.grad(expected.square().sum(), key)[0], rtol=0, atol=1e-10)

    out, assignment = assign(query, key)
    logits = assign.q_proj(query) @ assign.k_proj(key).transpose(-2, -1) * assign.scale
    torch.testing.assert_close(assignment.soft, logits.softmax(dim=-2), rtol=0, atol=1e-12)
    hard = F.one_hot(logits.argmax(dim=-2), groups).transpose(-2, -1).double()
    weights = hard / (hard.sum(dim=-1, keepdim=True) + assign.assign_eps)
    torch.testing.assert_close(out, assign.proj(weights @ assign.v_proj(key)), rtol=0, atol=1e-12)


def test_text_tower_encodes_each_distinct_text_once_at_its_bucket_length():
    """A training batch's texts (repeated prompts, short prompts beside long captions) through encode_text, which
    encodes each distinct text once and cuts padding per length bucket: the same embeddings and gradients, in
    training mode (the projection's BatchNorm sees every row), as the whole batch at full context length."""
    torch.manual_seed(0)
    config = groupseg.build_config("groupvit-tiny", text_width=32, text_layers=2, text_heads=2, context_length=24,
                                   embed_dim=16, proj_hidden_dim=32)  # fmt: skip
    model = groupseg.GroupViT(config).double().train()
    captions = ["a red circle beside a blue square on a grey ground", "two green stars", "a dog on a sofa by a window"]
    prompts = ["a photo of a circle.", "a photo of a red circle.", "a photo of a circle.", "a photo of a star."]
    tokens = groupseg.tokenize(captions + prompts + prompts[:2], context_length=24).view(3, 3, 24)
    tokens[0, 0, 2] = 0  # id 0 is padding and also a byte token ("!"): inside the longest text it must be kept

    got = model.encode_text(tokens, normalize=False)
    got_grads = torch.autograd.grad(got.square().sum(), list(model.text_encoder.parameters()))
    expected = model.text_projector(model.text_encoder(tokens.view(-1, 24))).view(3, 3, -1)
    expected_grads = torch.autograd.grad(expected.square().sum(), list(model.text_encoder.parameters()))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    for g, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-10)


def test_cast_matmul_weights_leaves_norms_tables_and_assignment_logits_fp32(model):
    tower = cast_matmul_weights_(copy.deepcopy(model.img_encoder))
    dtypes = {name: p.dtype for name, p in tower.named_parameters()}
    assert dtypes["layers.0.blocks.0.attn.qkv.weight"] == dtypes["patch_embed.proj.weight"] == torch.bfloat16
    assert dtypes["layers.0.downsample.assign.v_proj.bias"] == torch.bfloat16
    for name in ("layers.0.downsample.assign.q_proj.weight", "layers.0.downsample.assign.k_proj.bias",
                 "layers.0.blocks.0.norm1.weight", "pos_embed", "layers.0.group_token"):  # fmt: skip
        assert dtypes[name] == torch.float32, name


@torch.no_grad()
def test_bf16_segmentor_agrees_with_fp32_and_leaves_the_callers_model_alone(model):
    cfg = dict(mode="whole", precision="fp32")  # explicit: "auto" is bf16 on a CPU with native bf16
    fp32 = GroupViTSegmentor(model=model, vocabulary=CLASSES[1:], test_cfg=cfg)
    bf16 = GroupViTSegmentor(model=model, vocabulary=CLASSES[1:], test_cfg={**cfg, "precision": "bf16"})
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the segmentor cast a copy
    assert bf16.model.img_encoder.layers[0].blocks[0].mlp.fc1.weight.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.class_embeds, fp32.class_embeds)  # the text tower is not touched

    images = torch.randn(4, 3, 48, 64)
    out32, out16 = fp32.forward_image(images), bf16.forward_image(images)
    assert out16.image_embeds.dtype == out16.group_embeds.dtype == torch.float32
    for a32, a16 in zip(out32.vision.assignments, out16.vision.assignments):
        assert a16.soft.dtype == torch.float32
        torch.testing.assert_close(a16.soft, a32.soft, atol=0.05, rtol=0)
    torch.testing.assert_close(out16.image_embeds, out32.image_embeds, atol=0.03, rtol=0)

    labels32, labels16 = fp32.encode_decode(images).argmax(1), bf16.encode_decode(images).argmax(1)
    assert len(labels32.unique()) > 1  # the comparison covers several labels
    assert (labels32 == labels16).float().mean() > 0.95
    with pytest.raises(ValueError, match="precision"):
        GroupViTSegmentor(model=model, vocabulary=CLASSES, test_cfg={**cfg, "precision": "fp16"})


def test_single_image_api_takes_a_precision(model):
    """``ZeroShotSegmenter(precision=)`` reaches the segmentor ('auto' resolves per machine), and the labels of
    bf16 and fp32 agree; bf16 with the ONNX tower (which runs fp32) is refused in one line."""
    import groupseg
    from groupseg.models.precision import native_bf16

    rgb = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    segmenters = {p: groupseg.ZeroShotSegmenter(model, CLASSES[1:], short_side=None, precision=p)
                  for p in ("fp32", "bf16", "auto")}  # fmt: skip
    assert segmenters["auto"].segmentor.test_cfg.precision == ("bf16" if native_bf16() else "fp32")
    assert segmenters["bf16"].segmentor.model.img_encoder.layers[0].blocks[0].mlp.fc1.weight.dtype == torch.bfloat16
    labels = {p: s(rgb).labels for p, s in segmenters.items()}
    assert len(np.unique(labels["fp32"])) > 1 and (labels["fp32"] == labels["bf16"]).mean() > 0.95
    with pytest.raises(ValueError, match="precision='bf16'.*not 'onnx'"):
        groupseg.ZeroShotSegmenter(model, CLASSES[1:], precision="bf16", onnx_path="tower.onnx")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="inductor needs a C++ compiler")
@torch.no_grad()
def test_compiled_segmentor_matches_eager(model):
    """torch.compile (inductor, weights frozen) on the slide path; one input shape, so one compilation (~30 s)."""
    cfg = dict(mode="slide", crop_size=(32, 32), stride=(16, 16), bg_thresh=0.5, crop_batch_size=8, precision="fp32")
    eager = GroupViTSegmentor(model=model, vocabulary=CLASSES, test_cfg=cfg)
    compiled = GroupViTSegmentor(model=model, vocabulary=CLASSES, test_cfg={**cfg, "compile": True})
    images = torch.randn(2, 3, 48, 64)
    meta = [dict(ori_shape=(48, 64), img_shape=(48, 64), padding_size=[0, 0, 0, 0])] * 2
    expected = eager.inference(images, meta)
    torch.testing.assert_close(compiled.inference(images, meta), expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(compiled.inference(images, meta), expected, atol=1e-4, rtol=0)  # cached graph
