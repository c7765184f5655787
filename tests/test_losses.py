import torch
import torch.nn.functional as F

from groupseg.losses import GroupViTLoss, image_text_loss, multi_label_loss
from groupseg.models import GroupViT, build_config
from groupseg.tokenizer import tokenize


def normalized(*shape):
    return F.normalize(torch.randn(*shape, dtype=torch.float64), dim=-1)


def test_image_text_loss_is_symmetric_infonce():
    img, txt, scale = normalized(6, 8), normalized(6, 8), torch.tensor(14.0, dtype=torch.float64)
    expected = 0.0
    for i in range(6):  # direct, row by row
        row = scale * (img[i] @ txt.T)
        col = scale * (txt[i] @ img.T)
        expected += 0.5 * (-(row[i] - torch.logsumexp(row, 0)) - (col[i] - torch.logsumexp(col, 0))) / 6
    torch.testing.assert_close(image_text_loss(img, txt, scale), expected)


def test_multi_label_loss_matches_direct_computation():
    batch, k = 4, 3
    img, prompts, scale = normalized(batch, 8), normalized(batch, k, 8), torch.tensor(10.0, dtype=torch.float64)
    prompts[1, 2] = prompts[0, 0]  # a duplicate prompt of another image stays a negative
    flat = prompts.reshape(batch * k, 8)
    loss_img = 0.0
    for i in range(batch):
        logp = torch.log_softmax(scale * img[i] @ flat.T, 0)
        loss_img += -sum(logp[i * k + j] / k for j in range(k)) / batch
    loss_txt = 0.0
    for p in range(batch * k):
        logp = torch.log_softmax(scale * flat[p] @ img.T, 0)
        loss_txt += -logp[p // k] / (batch * k)
    torch.testing.assert_close(multi_label_loss(img, prompts, scale), 0.5 * (loss_img + loss_txt))


def test_groupvit_loss_combines_and_trains():
    model = GroupViT(build_config("groupvit-tiny")).train()
    images = torch.randn(4, 3, 32, 32)
    texts = ["a red circle", "a blue square", "a green star", "a big triangle"]
    prompts = [[f"a photo of a {w}." for w in t.split()[1:]] for t in texts]
    tokens = torch.stack([tokenize([t] + p[:2], context_length=16) for t, p in zip(texts, prompts)])
    loss_fn = GroupViTLoss(multi_label_weight=1.0)
    out = loss_fn(model(images, tokens))
    torch.testing.assert_close(out["loss"], out["loss_image_text"] + out["loss_multi_label"])
    assert "loss_multi_label" not in GroupViTLoss(0.0)(model(images, tokens[:, :1]))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        loss = loss_fn(model(images, tokens))["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first


def test_multi_label_loss_on_groups_scores_each_prompt_by_its_best_segment():
    batch, k, groups = 4, 3, 5
    segs, prompts = normalized(batch, groups, 8), normalized(batch, k, 8)
    segs.requires_grad_(True)
    scale = torch.tensor(10.0, dtype=torch.float64)
    # one segment per image: the image loss itself
    torch.testing.assert_close(
        multi_label_loss(segs[:, :1], prompts, scale), multi_label_loss(segs[:, 0], prompts, scale)
    )
    # several: the same loss on each (image, prompt) pair's best segment, and only best segments receive gradient
    flat = prompts.reshape(batch * k, 8)
    best = torch.einsum("bgd,pd->bgp", segs, flat).argmax(1)  # [B, B·K]
    loss = multi_label_loss(segs, prompts, scale)
    sims = torch.einsum("bgd,pd->bgp", segs, flat).gather(1, best[:, None]).squeeze(1)
    loss_img = -(torch.log_softmax(scale * sims, 1).view(batch, batch, k).diagonal().sum(0) / k).mean()
    loss_txt = torch.nn.functional.cross_entropy(scale * sims.T, torch.arange(batch).repeat_interleave(k))
    torch.testing.assert_close(loss, 0.5 * (loss_img + loss_txt))
    loss.backward()
    used = torch.zeros(batch, groups, dtype=torch.bool).scatter_(1, best, True)
    assert (segs.grad.norm(dim=-1)[~used] == 0).all() and (segs.grad.norm(dim=-1)[used] > 0).all()


def test_groupvit_loss_on_groups_runs_through_the_model_forward():
    model = GroupViT(build_config("groupvit-tiny")).train()
    tokens = torch.stack([tokenize(["a red circle", "a photo of a circle.", "a photo of a red circle."], 16)] * 4)
    loss_fn = GroupViTLoss(1.0, multi_label_on="groups")
    assert loss_fn.with_groups and not GroupViTLoss(1.0).with_groups and not GroupViTLoss(0.0, "groups").with_groups
    out = model(torch.randn(4, 3, 32, 32), tokens, with_groups=True)
    assert out["group_embeds"].shape == (4, 4, 16)
    losses = loss_fn(out)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss_multi_label"]) and model.img_encoder.layers[0].group_token.grad.abs().sum() > 0
    try:
        GroupViTLoss(1.0, multi_label_on="pixels")
    except ValueError as err:
        assert "multi_label_on" in str(err)
    else:
        raise AssertionError("an unknown multi_label_on must fail clearly")
