"""Proposal AR (COCOeval, class-agnostic) and the RITM click protocol, each checked against a direct numpy
computation on a tiny instance set."""
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from groupseg.metrics import click_summary, load_coco, next_click, number_of_clicks, proposal_recall, run_clicks

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def rle(mask):
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded["counts"] = encoded["counts"].decode()
    return encoded


def box_mask(shape, y0, x0, y1, x1):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def tiny_instance_set(rng):
    """Three images with 1-3 rectangles each (two categories), and scored proposals near, on and off them."""
    images, annotations, results, truth, proposals = [], [], [], {}, {}
    for image_id in (1, 2, 3):
        shape = (20, 24)
        images.append(dict(id=image_id, file_name=f"{image_id}.png", height=shape[0], width=shape[1]))
        truth[image_id], proposals[image_id] = [], []
        for _ in range(image_id):
            y0, x0 = rng.integers(0, 10), rng.integers(0, 12)
            gt = box_mask(shape, y0, x0, y0 + rng.integers(4, 10), x0 + rng.integers(4, 12))
            truth[image_id].append(gt)
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=int(rng.integers(1, 3)),
                                    segmentation=rle(gt), area=float(gt.sum()), bbox=[float(v) for v in
                                    mask_utils.toBbox(rle(gt))], iscrowd=0))  # fmt: skip
            for _ in range(4):  # jittered copies of the object, some good, some poor
                dy, dx = rng.integers(-2, 3, size=2)
                proposals[image_id].append((np.roll(gt, (dy, dx), axis=(0, 1)), float(rng.random())))
        for _ in range(3):  # and random boxes
            y0, x0 = rng.integers(0, 15), rng.integers(0, 18)
            proposals[image_id].append((box_mask(shape, y0, x0, y0 + 5, x0 + 6), float(rng.random())))
        for mask, score in proposals[image_id]:
            results.append(dict(image_id=image_id, category_id=1, segmentation=rle(mask), score=score))
    instances = dict(images=images, annotations=annotations,
                     categories=[dict(id=1, name="a"), dict(id=2, name="b")])  # fmt: skip
    return instances, results, truth, proposals


def numpy_recall(truth, proposals, k):
    """COCO's matching, written out: per image the k best-scored proposals, each in score order taking the unmatched
    object it overlaps most (IoU ≥ t); recall = matched / objects, averaged over the ten IoU thresholds."""
    recalls = []
    for t in IOU_THRESHOLDS:
        matched = total = 0
        for image_id, objects in truth.items():
            ranked = sorted(proposals[image_id], key=lambda p: -p[1])[:k]
            free = list(range(len(objects)))
            for mask, _ in ranked:
                ious = {g: (mask & objects[g]).sum() / (mask | objects[g]).sum() for g in free}
                best = max(ious, key=ious.get, default=None)
                if best is not None and ious[best] >= t:
                    free.remove(best)
                    matched += 1
            total += len(objects)
        recalls.append(matched / total)
    return float(np.mean(recalls))


def test_proposal_recall_matches_a_direct_numpy_computation():
    instances, results, truth, proposals = tiny_instance_set(np.random.default_rng(2))
    recall = proposal_recall(instances, results, max_dets=(1, 3, 100))
    for k in (1, 3, 100):
        assert recall[f"AR@{k}"] == pytest.approx(numpy_recall(truth, proposals, k), abs=1e-9)
    assert 0 < recall["AR@1"] < recall["AR@3"] <= recall["AR@100"] < 1  # the set is not trivial
    first_two = proposal_recall(instances, [r for r in results if r["image_id"] < 3], image_ids=[1, 2])
    assert first_two["AR@100"] == pytest.approx(numpy_recall({i: truth[i] for i in (1, 2)}, proposals, 100))


def test_proposal_recall_is_class_agnostic_and_zero_without_proposals():
    instances, results, _, _ = tiny_instance_set(np.random.default_rng(1))
    relabelled = [dict(r, category_id=2) for r in results]  # wrong categories do not matter
    assert proposal_recall(instances, relabelled) == proposal_recall(instances, results)
    assert proposal_recall(instances, []) == {"AR@10": 0.0, "AR@100": 0.0, "AR@1000": 0.0}
    annotations = instances["annotations"]
    perfect = [dict(image_id=a["image_id"], segmentation=a["segmentation"], score=1.0) for a in annotations]
    assert proposal_recall(instances, perfect)["AR@10"] == pytest.approx(1.0)


def brute_force_distance(region: np.ndarray) -> np.ndarray:
    """Euclidean distance of each pixel of ``region`` to the nearest pixel outside it, the image border counting as
    outside (RITM pads with zeros)."""
    padded = np.pad(region, 1)
    outside = np.argwhere(~padded)
    out = np.zeros(region.shape)
    for y, x in np.argwhere(region):
        out[y, x] = np.sqrt(((outside - (y + 1, x + 1)) ** 2).sum(axis=1)).min()
    return out


def numpy_click(gt, pred, clicked):
    fn, fp = brute_force_distance(gt & ~pred) * ~clicked, brute_force_distance(~gt & pred) * ~clicked
    positive = fn.max() > fp.max()
    dt = fn if positive else fp
    y, x = np.argwhere(dt == dt.max())[0]
    return positive, (int(y), int(x))


def disc_predictor(shape, radius):
    """Clicks → the union of discs around positive clicks minus discs around negative ones."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]

    def predict(points, labels):
        mask = np.zeros(shape, bool)
        for (x, y), label in sorted(zip(points.tolist(), labels.tolist()), key=lambda p: -p[1]):
            disc = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
            mask = mask | disc if label == 1 else mask & ~disc
        return mask

    return predict


def test_load_coco_refuses_a_binary_file_and_a_results_list_with_a_one_line_error(tmp_path):
    binary = tmp_path / "mask.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00")  # not UTF-8: was a bare UnicodeDecodeError naming no file
    with pytest.raises(ValueError, match=f"cannot read COCO instances {binary}: 'utf-8' codec"):
        load_coco(binary)
    results = tmp_path / "results.json"
    results.write_text('[{"image_id": 1, "score": 0.5}]')  # a COCO results list, given where instances go
    with pytest.raises(ValueError, match=f"{results} holds a list \\(a results file\\?\\)"):
        load_coco(results)


def test_the_first_click_lands_at_the_centre_of_the_object():
    gt = box_mask((15, 15), 3, 4, 10, 13)
    positive, (y, x) = next_click(gt, np.zeros_like(gt))
    assert positive and (y, x) == (6, 7)  # 7 rows × 9 columns: the middle row, first of the 3 deepest (cols 7-9)


def test_click_runs_and_noc_match_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    shape = (18, 22)
    runs, expected = [], []
    for _ in range(4):
        y0, x0 = rng.integers(0, 6), rng.integers(0, 8)
        gt = box_mask(shape, y0, x0, y0 + rng.integers(6, 12), x0 + rng.integers(6, 14))
        predict = disc_predictor(shape, radius=3.5)
        runs.append(run_clicks(gt, predict, max_clicks=8, stop_iou=None))
        pred, clicked, points, labels, ious = np.zeros(shape, bool), np.zeros(shape, bool), [], [], []
        for _ in range(8):
            positive, (y, x) = numpy_click(gt, pred, clicked)
            clicked[y, x] = True
            points.append((x, y))
            labels.append(int(positive))
            pred = predict(np.array(points), np.array(labels))
            ious.append((pred & gt).sum() / (pred | gt).sum())
        expected.append(ious)
        assert runs[-1].points == points and runs[-1].labels == labels
        assert runs[-1].ious == pytest.approx(ious)
    summary = click_summary(runs, thresholds=(0.5, 0.85), max_clicks=8)
    assert summary["mIoU@1"] == pytest.approx(100 * np.mean([e[0] for e in expected]))
    for t in (0.5, 0.85):
        direct = np.mean([next((i + 1 for i, v in enumerate(e) if v >= t), 8) for e in expected])
        assert summary[f"NoC@{round(100 * t)}"] == pytest.approx(direct)
    assert 1 <= summary["NoC@50"] < 8  # the discs reach IoU 0.5 on these objects, not instantly


def test_noc_counts_max_clicks_when_never_reached_and_runs_stop_at_the_target():
    assert number_of_clicks([0.3, 0.6, 0.9], 0.85) == 3
    assert number_of_clicks([0.3, 0.6], 0.85, max_clicks=20) == 20
    gt = box_mask((10, 10), 2, 2, 8, 8)
    run = run_clicks(gt, lambda points, labels: gt, max_clicks=20)
    assert run.ious == [1.0] and run.labels == [1]


def uncompressed(mask):
    """COCO's uncompressed RLE (counts a list of run lengths, column-major, zeros first), as crowd regions have."""
    flat = np.concatenate([[0], mask.ravel(order="F").astype(np.int8), [1 - mask.ravel(order="F")[-1]]])
    edges = np.nonzero(np.diff(flat))[0]
    return dict(size=list(mask.shape), counts=np.diff(np.concatenate([[0], edges])).tolist())


def test_lvis_style_and_class_agnostic_instances_are_read():
    instances, results, truth, proposals = tiny_instance_set(np.random.default_rng(2))
    lvis = dict(instances, images=[{k: v for k, v in im.items() if k != "file_name"} |
                                   dict(coco_url=f"http://images.cocodataset.org/val2017/{im['id']}.jpg")
                                   for im in instances["images"]],
                annotations=[{k: v for k, v in a.items() if k not in ("iscrowd", "area")} for a in
                             instances["annotations"]])  # fmt: skip
    for ann, gt in zip(lvis["annotations"], (g for i in (1, 2, 3) for g in truth[i])):
        ann["segmentation"] = uncompressed(gt)
    recall = proposal_recall(lvis, results, max_dets=(1, 3))  # was: KeyError 'iscrowd' (then 'area') in COCOeval
    assert recall["AR@3"] == pytest.approx(numpy_recall(truth, proposals, 3), abs=1e-9)
    coco = load_coco(lvis)
    assert coco.imgs[1]["file_name"] == "val2017/1.jpg"  # where detectron2 looks for an LVIS image
    assert coco.anns[1]["area"] == truth[1][0].sum() and "area" not in lvis["annotations"][0]  # the input untouched
    agnostic = dict(images=instances["images"], annotations=[{k: v for k, v in a.items() if k != "category_id"}
                                                             for a in instances["annotations"]])  # fmt: skip
    assert proposal_recall(agnostic, results, max_dets=(3,))["AR@3"] == recall["AR@3"]  # was KeyError 'categories'
    with pytest.raises(ValueError, match="no 'segmentation'"):
        load_coco(dict(instances, annotations=[{k: v for k, v in a.items() if k != "segmentation"}
                                               for a in instances["annotations"]]))  # fmt: skip
