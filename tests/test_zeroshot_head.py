"""The segmentor's predictions equal an independent numpy re-implementation of the official NVlabs algorithm
(``GroupViTSegInference.encode_decode`` + mmseg's whole / slide inference), computed from the model's raw outputs."""
import numpy as np
import pytest
import torch
from mmseg.structures import SegDataSample

import groupseg
from groupseg.zeroshot import GroupViTSegmentor, parse_vocabulary

CLASSES = ["background", "cat", "dog", "grass", "sky", "car", "tree", "road", "person"]


@pytest.fixture(scope="module")
def model(sharp_tiny_model):
    return sharp_tiny_model


def bilinear(x, size):
    """[C, h, w] → [C, H, W]: bilinear, align_corners=False (half-pixel centres, clamped), written out by hand."""
    def axis(out, inp):
        src = np.maximum((np.arange(out) + 0.5) * (inp / out) - 0.5, 0.0)
        lo = np.minimum(np.floor(src).astype(int), inp - 1)
        return lo, np.minimum(lo + 1, inp - 1), src - lo

    (y0, y1, ly), (x0, x1, lx) = axis(size[0], x.shape[1]), axis(size[1], x.shape[2])
    rows = x[:, y0] * (1 - ly)[:, None] + x[:, y1] * ly[:, None]
    return rows[:, :, x0] * (1 - lx) + rows[:, :, x1] * lx


def official_crop_logits(model, crop, class_embeds, bg_thresh):
    """NVlabs encode_decode for one crop [1, 3, h, w], from model.forward_image's raw outputs, in float64 numpy."""
    with torch.no_grad():
        out = model.forward_image(crop)
    soft = [a.soft[0].double().numpy() for a in out.vision.assignments]  # [G_out, N_in] per stage
    chained = soft[0].T
    for s in soft[1:]:
        chained = chained @ s.T  # [N, G]
    h, w = crop.shape[2:]
    maps = bilinear(chained.T.reshape(-1, *out.vision.grid), (h, w))
    group_of_pixel = maps.argmax(0)  # [h, w]
    groups = out.group_embeds[0].double().numpy()
    image = out.image_embeds[0].double().numpy()
    scale = model.scale().item()
    text = class_embeds.double().numpy()

    def softmax(z):
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    logits = scale * groups @ text.T  # [G, K]
    pre = softmax(logits)
    image_probs = softmax(scale * image @ text.T)
    top = np.argsort(-image_probs)[: min(5, len(text))]
    masked = np.full_like(logits, -np.inf)
    masked[:, top] = logits[:, top]
    scores = softmax(masked) * pre  # [G, K]
    pixel = scores[group_of_pixel]  # [h, w, K]
    if bg_thresh is None:
        return pixel.transpose(2, 0, 1)
    thresh = min(bg_thresh, scores.max())
    background = (pixel.max(-1) < thresh).astype(np.float64)
    return np.concatenate([background[None], pixel.transpose(2, 0, 1)])


def official_prediction(model, image, ori_shape, class_embeds, bg_thresh, mode, crop=None, stride=None):
    h_img, w_img = image.shape[2:]
    if mode == "whole":
        logits = official_crop_logits(model, image, class_embeds, bg_thresh)
    else:
        num = class_embeds.shape[0] + (bg_thresh is not None)
        logits, count = np.zeros((num, h_img, w_img)), np.zeros((h_img, w_img))
        for hi in range(max(h_img - crop + stride - 1, 0) // stride + 1):  # one crop at a time, as mmseg 0.x did
            for wi in range(max(w_img - crop + stride - 1, 0) // stride + 1):
                y2, x2 = min(hi * stride + crop, h_img), min(wi * stride + crop, w_img)
                y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
                part = image[:, :, y1:y2, x1:x2]
                logits[:, y1:y2, x1:x2] += official_crop_logits(model, part, class_embeds, bg_thresh)
                count[y1:y2, x1:x2] += 1
        logits /= count
    return bilinear(logits, ori_shape).argmax(0)


def reference_class_embeds(model, names):
    with torch.no_grad():
        tokens = groupseg.tokenize([f"a photo of a {n}." for n in names], model.config.context_length)
        return torch.nn.functional.normalize(model.encode_text(tokens, normalize=False), dim=-1)


@pytest.mark.parametrize(
    "mode, size, ori_shape, bg_thresh",
    [
        ("whole", (48, 72), (41, 60), 0.95),
        ("whole", (52, 40), (52, 40), None),
        ("slide", (48, 80), (37, 61), 0.95),
        ("slide", (40, 56), (50, 70), 0.3),
        ("slide", (28, 60), (28, 60), None),  # image lower than the crop: crops take its full height
    ],
)
def test_segmentor_matches_the_official_algorithm_on_every_pixel(model, mode, size, ori_shape, bg_thresh):
    classes = CLASSES if bg_thresh is not None else CLASSES[1:]
    # fp32: the comparison is exact, and precision "auto" is bf16 on a CPU with native bf16
    test_cfg = dict(mode=mode, crop_size=(32, 32), stride=(16, 16), bg_thresh=bg_thresh, crop_batch_size=3,
                    precision="fp32")
    segmentor = GroupViTSegmentor(model=model, vocabulary=classes, test_cfg=test_cfg).eval()
    torch.manual_seed(1)
    images = torch.randn(2, 3, *size)
    meta = dict(ori_shape=ori_shape, img_shape=size, padding_size=[0, 0, 0, 0])
    with torch.no_grad():
        samples = segmentor.predict(images, [SegDataSample(metainfo=meta) for _ in range(2)])
    class_embeds = reference_class_embeds(model, parse_vocabulary(classes).names[1 if bg_thresh is not None else 0 :])
    for image, sample in zip(images, samples):
        want = official_prediction(model, image[None], ori_shape, class_embeds, bg_thresh, mode, crop=32, stride=16)
        got = sample.pred_sem_seg.data[0].numpy()
        assert got.shape == ori_shape
        np.testing.assert_array_equal(got, want)
        assert len(np.unique(want)) > 1  # the comparison covers more than one label


def test_background_threshold_is_per_crop_min_of_threshold_and_best_score(model):
    """A high threshold keeps only pixels of the best (group, class) pair; threshold 0 never gives background."""
    images = torch.randn(1, 3, 32, 32)
    logits = {}
    for thresh in (0.999, 0.0):
        segmentor = GroupViTSegmentor(model=model, vocabulary=CLASSES, test_cfg=dict(mode="whole", bg_thresh=thresh))
        with torch.no_grad():
            logits[thresh] = segmentor.encode_decode(images)[0]
    best = logits[0.0][1:].amax(0)
    torch.testing.assert_close(logits[0.999][0], (best < best.max()).float())
    assert logits[0.0][0].sum() == 0


def test_cosine_background_score_rejects_segments_that_match_no_class_well():
    """Segment 0 is close to class 0; segment 1 is far from both classes but a little less far from class 1, so the
    official softmax score is confident for it. bg_score='cosine' makes it background, 'probability' does not."""
    from groupseg.zeroshot.head import seg_logits

    classes = torch.eye(4)[:2]  # two orthonormal class embeddings
    segments = torch.nn.functional.normalize(torch.tensor([[[0.9, 0.1, 0.4, 0.0], [0.0, 0.1, 0.0, 1.0]]]), dim=-1)
    cosine = (segments @ classes.T).amax(-1)[0]
    assert cosine[0] > 0.8 and cosine[1] < 0.15
    soft = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]])  # tokens 0-1 → segment 0, tokens 2-3 → 1
    labels = {}
    for score in ("probability", "cosine"):
        logits = seg_logits([soft], (2, 2), segments, segments.mean(1), classes, torch.tensor(100.0), (2, 2),
                            bg_thresh=0.5, bg_score=score)  # fmt: skip
        labels[score] = logits[0].argmax(0)
    assert labels["probability"].tolist() == [[1, 1], [2, 2]]  # label 0 is background, 1 + class index otherwise
    assert labels["cosine"].tolist() == [[1, 1], [0, 0]]
    try:
        seg_logits([soft], (2, 2), segments, segments.mean(1), classes, torch.tensor(100.0), (2, 2), 0.5, bg_score="x")
    except ValueError as err:
        assert "bg_score" in str(err)
    else:
        raise AssertionError("an unknown bg_score must fail clearly")
    try:
        GroupViTSegmentor(model=groupseg.GroupViT(groupseg.build_config("groupvit-tiny")), vocabulary=CLASSES,
                          test_cfg=dict(bg_score="cos"))  # fmt: skip
    except ValueError as err:
        assert "bg_score" in str(err)
    else:
        raise AssertionError("the segmentor must refuse an unknown bg_score before any image")
