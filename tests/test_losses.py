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
