"""GroupPredictor and GroupMaskGenerator: hand-built groups give known masks for points, negative points, boxes and
text; a real (tiny, random) GroupViT on any image size; RLE round trip; bad prompts are one-line errors."""
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from groupseg.prompts import GroupMaskGenerator, GroupPredictor, PromptError, RegionPredictor
from groupseg.zeroshot import class_embeddings, parse_vocabulary

# An 8×8 image seen as 8×8 tokens. Final stage (3 groups): A = two separate squares, B = a 3×3 block, C = the rest.
# First stage (5 groups): u0 = A's big square, u1 = A's small square, u2 / u4 = B's top row / bottom two rows,
# u3 = the rest. The second stage merges u0, u1 → A; u2, u4 → B; u3 → C.
SIZE = 8
FIRST = np.full((SIZE, SIZE), 3)
FIRST[1:4, 1:4] = 0
FIRST[5:7, 5:7] = 1
FIRST[5, 0:3] = 2
FIRST[6:8, 0:3] = 4
PARENT = np.array([0, 0, 1, 2, 1])  # first-stage group → final group
SQUARE, SMALL, B_TOP, B_BOTTOM = (FIRST == g for g in (0, 1, 2, 4))
A, B, C = (PARENT[FIRST] == g for g in range(3))


def soft(onehot_index: np.ndarray, groups: int, confidence: float) -> torch.Tensor:
    """``[groups, N]`` soft assignment: ``confidence`` on the given group, the rest spread evenly."""
    out = torch.full((groups, onehot_index.size), (1 - confidence) / groups)
    out[torch.from_numpy(onehot_index.ravel()), torch.arange(onehot_index.size)] += confidence
    return out


@pytest.fixture(scope="module")
def word_embeds(tiny_model):
    return class_embeddings(tiny_model, parse_vocabulary(["cat", "dog", "grass"]))  # [3, D]


def hand_built(model=None, group_embeds=None, vocabulary=None, original_size=None) -> GroupPredictor:
    predictor = GroupPredictor(model, vocabulary=vocabulary)
    assignments = [soft(FIRST, 5, 0.8), soft(PARENT, 3, 0.9)]
    predictor.set_assignments(assignments, (SIZE, SIZE), (SIZE, SIZE), original_size=original_size,
                              group_embeds=group_embeds)  # fmt: skip
    return predictor


def same_masks(masks, expected) -> bool:
    return len(masks) == len(expected) and all(np.array_equal(m, e) for m, e in zip(masks, expected))


def test_a_point_gives_the_nested_units_under_it_finest_and_most_certain_first():
    predictor = hand_built()
    masks, scores = predictor.predict(point_coords=[[2, 2]], point_labels=[1])
    assert same_masks(masks, [SQUARE, A])  # the stage-1 group = its piece at stage 2; then the whole final group A
    assert masks.dtype == bool and masks.shape == (2, SIZE, SIZE) and scores[0] > scores[1]
    best, _ = predictor.predict(point_coords=[[2, 2]], point_labels=[1], multimask_output=False)
    assert same_masks(best, [SQUARE])


def test_several_positive_points_take_the_union_of_their_units():
    masks, _ = hand_built().predict(point_coords=[[2, 2], [1, 7]], point_labels=[1, 1])
    assert any(np.array_equal(m, SQUARE | B_BOTTOM) for m in masks)  # first stage
    assert any(np.array_equal(m, A | B) for m in masks)  # final stage


def test_a_negative_point_removes_the_coarsest_unit_under_it_that_holds_no_positive_point():
    predictor = hand_built()
    masks, _ = predictor.predict(point_coords=[[1, 5], [1, 7]], point_labels=[1, 0])
    assert same_masks(masks, [B_TOP])  # B loses its bottom rows (the stage-1 group under the negative point)
    masks, _ = predictor.predict(point_coords=[[2, 2], [5.5, 5.5]], point_labels=[1, 0])
    assert not masks[:, SMALL].any() and all(m[SQUARE].all() for m in masks)


def test_clicks_of_both_signs_in_the_finest_unit_split_it_by_soft_assignment():
    membership = np.array([0.9, 0.83, 0.76, 0.69, 0.62, 0.55, 0.2, 0.1])  # in group 0, falling to the right
    maps = np.stack([np.tile(membership, (6, 1)), 1 - np.tile(membership, (6, 1))])  # [2 groups, 6, 8]
    predictor = GroupPredictor(None)
    predictor.set_levels([maps], (6, 8))
    masks, _ = predictor.predict(point_coords=[[0.5, 2.5], [5.5, 2.5]], point_labels=[1, 0])
    expected = np.zeros((6, 8), bool)
    expected[:, :3] = True  # nearer to 0.9 than to 0.55: membership above 0.725
    assert same_masks(masks, [expected])


def test_a_box_keeps_the_units_lying_mostly_inside_it():
    predictor = hand_built()
    masks, _ = predictor.predict(box=[0, 4, 4, 8])
    assert same_masks(masks, [B])  # B's two stage-1 groups, and B itself; the background is mostly outside
    masks, _ = predictor.predict(box=[1, 1, 4, 4])  # A is 9/13 inside: kept whole at the final stage
    assert same_masks(masks, [SQUARE, A])
    masks, _ = predictor.predict(box=[4, 0, 7, 3])  # inside the background only: the unit most inside, not an error
    assert same_masks(masks, [C])
    no_clicks = predictor.predict(point_coords=np.zeros((0, 2)), point_labels=np.zeros(0, int), box=[0, 4, 4, 8])
    assert same_masks(no_clicks[0], [B])  # an empty click list with a box is the box alone (was a PromptError)


def test_masks_come_back_at_the_original_image_size():
    predictor = hand_built(original_size=(16, 24))
    masks, _ = predictor.predict(point_coords=[[6.5, 4.5]], point_labels=[1])  # x 6.5/24·8 → col 2, y 4.5/16·8 → row 2
    assert masks.shape[1:] == (16, 24)
    expected = SQUARE.repeat(2, axis=0).repeat(3, axis=1)
    assert np.array_equal(masks[0], expected)


class Upsampled(GroupPredictor):
    """8×8 working pixels for a 4×4 image (as short_side upsamples): group 1 is working column 2 alone, which no
    original pixel shows (to_original samples working columns 1, 3, 5, 7)."""

    def __init__(self):
        super().__init__(None)

    def set_image(self, image=None):
        thin = np.zeros((SIZE, SIZE))
        thin[:, 2] = 1
        self.set_levels([np.stack([1 - thin, thin]) * 0.8 + 0.1], (4, 4))


def test_a_click_selects_what_the_clicked_pixel_shows_when_the_working_size_is_larger():
    predictor = Upsampled()
    predictor.set_image()
    masks, scores = predictor.predict(point_coords=[[1.0, 1.0]], point_labels=[1])  # pixel 1 shows working column 3
    assert len(masks) == len(scores) >= 1 and all(m[1, 1] for m in masks)  # was: column 2, an empty mask
    masks, _ = predictor.predict(box=[0, 0, 4, 4])
    assert all(m.any() for m in masks)


def test_the_generator_drops_units_no_original_pixel_shows():
    records = GroupMaskGenerator(Upsampled()).generate(np.zeros((4, 4, 3), np.uint8))
    assert records and all(r["area"] > 0 for r in records)  # was: a record of area 0 for group 1
    for r in records:
        x, y = r["point_coords"][0]
        assert r["segmentation"][int(y), int(x)]


def test_free_text_selects_the_final_group_whose_embedding_matches(tiny_model, word_embeds):
    predictor = hand_built(tiny_model, group_embeds=word_embeds)  # A = "cat", B = "dog", C = "grass"
    for word, group in (("cat", A), ("dog", B), ("grass", C)):
        masks, scores = predictor.predict(text=word)
        assert np.array_equal(masks[0], group) and scores[0] == pytest.approx(1.0, abs=1e-4)


def test_text_from_a_vocabulary_selects_the_concept_then_its_pieces(tiny_model, word_embeds):
    predictor = hand_built(tiny_model, group_embeds=word_embeds, vocabulary=["cat", "dog", "grass"])
    masks, _ = predictor.predict(text="cat")
    assert same_masks(masks, [A, SQUARE, SMALL])  # the whole concept, then its pieces largest first
    dog_masks, dog = predictor.predict(point_coords=[[1, 6]], point_labels=[1], text="dog")  # scored by the text
    cat_masks, cat = predictor.predict(point_coords=[[1, 6]], point_labels=[1], text="cat")
    assert same_masks(dog_masks, cat_masks) and same_masks(dog_masks, [B_BOTTOM, B]) and (dog > cat).all()


@pytest.mark.parametrize(
    "prompt, message",
    [
        (dict(point_coords=[[8.5, 2]], point_labels=[1]), "outside the 8×8 image"),
        (dict(point_coords=[[-1, 2]], point_labels=[1]), "outside"),
        (dict(box=[4, 4, 4, 6]), "empty"),
        (dict(box=[9, 9, 12, 12]), "outside"),
        (dict(point_coords=[[2, 2]], point_labels=[2]), "point_labels"),
        (dict(point_coords=[[2, 2]]), "go together"),
        (dict(point_coords=[[2, 2]], point_labels=[0]), "background points alone"),
        (dict(), "give a prompt"),
        (dict(text="bird"), "unknown class 'bird'"),
    ],
)
def test_bad_prompts_are_one_line_errors(tiny_model, word_embeds, prompt, message):
    predictor = hand_built(tiny_model, group_embeds=word_embeds, vocabulary=["cat", "dog", "grass"])
    with pytest.raises(PromptError, match=message) as err:
        predictor.predict(**prompt)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bg_thresh", [-1.0, 1.5, float("nan")])
def test_a_background_threshold_outside_0_1_is_refused_as_by_the_zero_shot_segmenter(bg_thresh):
    for bg_score in ("probability", "cosine"):
        with pytest.raises(ValueError, match=r"bg_thresh must be a number in \[0, 1\]"):
            GroupPredictor(None, bg_thresh=bg_thresh, bg_score=bg_score)
    assert GroupPredictor(None, bg_thresh=0.0).bg_thresh == 0.0 and GroupPredictor(None, bg_thresh=1).bg_thresh == 1


def test_predict_before_set_image_and_text_without_a_model_are_errors():
    with pytest.raises(RuntimeError, match="set_image"):
        GroupPredictor(None).predict(point_coords=[[0, 0]], point_labels=[1])
    with pytest.raises(PromptError, match="need a GroupViT"):
        hand_built().predict(text="cat")


@pytest.mark.parametrize("size, short_side", [((32, 32), None), ((37, 53), None), ((20, 30), 48)])
def test_a_real_model_answers_prompts_on_any_image_size(sharp_tiny_model, size, short_side):
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    predictor = GroupPredictor(sharp_tiny_model, short_side=short_side)
    predictor.set_image(image)
    masks, scores = predictor.predict(point_coords=[[size[1] - 0.5, size[0] - 0.5]], point_labels=[1])
    assert masks.shape[1:] == size and len(masks) == len(scores) >= 1
    assert all(m[size[0] - 1, size[1] - 1] for m in masks)  # every candidate holds the clicked pixel
    assert np.all(np.diff(scores) <= 0)  # best first
    masks, _ = predictor.predict(text="a red circle", multimask_output=False)
    assert masks.shape == (1, *size)


def test_set_image_takes_sams_image_format_for_opencv_bgr_arrays(sharp_tiny_model):
    image = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    rgb, bgr = GroupPredictor(sharp_tiny_model), GroupPredictor(sharp_tiny_model)
    rgb.set_image(image)
    bgr.set_image(np.ascontiguousarray(image[..., ::-1]), image_format="BGR")  # was: a TypeError
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(rgb.levels, bgr.levels))
    regions = RegionPredictor("slic")
    regions.set_image(image[..., ::-1], "BGR")
    with pytest.raises(ValueError, match="image_format"):
        rgb.set_image(image, image_format="HSV")


class HandBuilt(GroupPredictor):
    """The hand-built groups for any image: the generator's real pipeline on known groups."""

    def __init__(self, model, group_embeds):
        super().__init__(model)
        self.group_embeds = group_embeds

    def set_image(self, image):
        self.set_assignments([soft(FIRST, 5, 0.8), soft(PARENT, 3, 0.9)], (SIZE, SIZE), (SIZE, SIZE),
                             group_embeds=self.group_embeds)  # fmt: skip


def test_the_generator_proposes_every_group_and_piece_once_each_labelled(tiny_model, word_embeds):
    generator = GroupMaskGenerator(HandBuilt(tiny_model, word_embeds))
    records = generator.generate(np.zeros((SIZE, SIZE, 3), np.uint8), vocabulary=["cat", "dog", "grass"])
    expected = {"u0": SQUARE, "u1": SMALL, "u2": B_TOP, "u4": B_BOTTOM, "rest": C, "A": A, "B": B}
    found = {name for name, mask in expected.items() for r in records if np.array_equal(r["segmentation"], mask)}
    assert found == set(expected) and len(records) == len(expected)  # duplicates (u0 = A's piece, u3 = C) dropped
    keys = {"segmentation", "area", "bbox", "predicted_iou", "stability_score", "point_coords", "crop_box", "label",
            "label_score"}  # fmt: skip
    assert all(keys <= set(r) for r in records)
    assert [r["predicted_iou"] for r in records] == sorted((r["predicted_iou"] for r in records), reverse=True)
    for r in records:
        mask = r["segmentation"]
        assert r["area"] == mask.sum()
        x, y = r["point_coords"][0]
        assert mask[int(y), int(x)]  # the record's point lies inside its mask
        ys, xs = np.nonzero(mask)
        assert r["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert r["label"] == ("cat" if mask[A].any() else "dog" if mask[B].any() else "grass")
        assert 0 < r["stability_score"] <= 1 and 0 < r["predicted_iou"] <= 1


class Spilled(GroupPredictor):
    """Two groups on 8×8 px: group 0 is sure of a 4×4 object (0.85) and wins a one-pixel ring around it by a little
    (0.55): its argmax mask is the object and the ring, its soft map cut at 0.7 the object alone."""

    OBJECT = np.zeros((SIZE, SIZE), bool)
    OBJECT[2:6, 2:6] = True
    RING = np.zeros((SIZE, SIZE), bool)
    RING[1:7, 1:7] = True
    RING &= ~OBJECT

    def __init__(self):
        super().__init__(None)
        self.member = np.where(self.OBJECT, 0.85, np.where(self.RING, 0.55, 0.1))

    def set_image(self, image=None):
        self.set_levels([np.stack([self.member, 1 - self.member])], (SIZE, SIZE))


def test_the_generator_also_proposes_each_group_cut_at_a_few_memberships():
    blank = np.zeros((SIZE, SIZE, 3), np.uint8)
    records = GroupMaskGenerator(Spilled()).generate(blank)
    cut = [r for r in records if np.array_equal(r["segmentation"], Spilled.OBJECT)]
    assert len(cut) == 1 and cut[0]["unit"] == "group>0.7"  # 0.3 and 0.5 give the argmax mask again, 0.9 nothing
    member = Spilled().member
    held = member[Spilled.OBJECT].sum()
    assert cut[0]["predicted_iou"] == pytest.approx(held / (16 + member.sum() - held))  # soft IoU with the map
    assert cut[0]["stability_score"] == pytest.approx(1.0)  # the cuts at 0.6 and 0.8 are both the object
    assert any(np.array_equal(r["segmentation"], Spilled.OBJECT | Spilled.RING) and r["unit"] == "group"
               for r in records)  # fmt: skip
    near = GroupMaskGenerator(Spilled(), cut_thresholds=(0.8499999,)).generate(blank)  # cut where it was scored
    assert any(np.array_equal(r["segmentation"], Spilled.OBJECT) for r in near)  # (6 digits: 0.85, an empty cut)
    units_only = GroupMaskGenerator(Spilled(), cut_thresholds=()).generate(blank)
    assert not any(np.array_equal(r["segmentation"], Spilled.OBJECT) for r in units_only)


def test_pieces_scored_at_once_score_as_each_alone(sharp_tiny_model):
    predictor = GroupPredictor(sharp_tiny_model)
    predictor.set_image(np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    checked = 0
    for level in predictor.levels:
        for group in np.unique(level.labels):
            ids, ious, stabilities = level.piece_scores(int(group), 0.1)
            for piece, iou, stability in zip(ids, ious, stabilities):
                alone = level.score(np.array([group]), level.pieces == piece, "piece", 0.1)
                assert (iou, stability) == pytest.approx(alone)
                checked += 1
    assert checked > 10


def test_generator_thresholds_filter_as_sams_do(tiny_model, word_embeds):
    blank = np.zeros((SIZE, SIZE, 3), np.uint8)
    everything = GroupMaskGenerator(HandBuilt(tiny_model, word_embeds)).generate(blank)
    cut = sorted(r["predicted_iou"] for r in everything)[3]
    kept = GroupMaskGenerator(HandBuilt(tiny_model, word_embeds), pred_iou_thresh=cut).generate(blank)
    assert len(kept) == sum(r["predicted_iou"] >= cut for r in everything) < len(everything)


@pytest.mark.parametrize("option", [dict(pred_iou_thresh=1.5), dict(stability_score_thresh=-0.1),
                                    dict(min_mask_region_area=-1), dict(cut_thresholds=(0.5, 1.0))])  # fmt: skip
def test_generator_options_out_of_range_are_refused(option):
    with pytest.raises(ValueError, match=next(iter(option))):
        GroupMaskGenerator(GroupPredictor(None), **option)


def test_coco_rle_output_decodes_to_the_binary_masks(sharp_tiny_model):
    image = np.random.default_rng(1).integers(0, 256, (36, 44, 3), dtype=np.uint8)
    binary = GroupMaskGenerator(sharp_tiny_model).generate(image)
    rle = GroupMaskGenerator(sharp_tiny_model, output_mode="coco_rle").generate(image)
    assert len(binary) == len(rle) > 1
    for b, r in zip(binary, rle):
        assert isinstance(r["segmentation"]["counts"], str)  # JSON-ready
        decoded = mask_utils.decode(dict(r["segmentation"], counts=r["segmentation"]["counts"].encode()))
        assert np.array_equal(decoded.astype(bool), b["segmentation"]) and r["area"] == b["area"]


def test_min_mask_region_area_fills_holes_and_drops_islands():
    from groupseg.prompts.automatic_mask_generator import _remove_small_regions

    mask = np.zeros((12, 12), bool)
    mask[1:8, 1:8] = True
    mask[4, 4] = False  # a one-pixel hole
    mask[10, 10] = True  # a one-pixel island
    cleaned = _remove_small_regions(mask, 3)
    assert cleaned[4, 4] and not cleaned[10, 10] and cleaned[1:8, 1:8].all() and cleaned.sum() == 49


def test_superpixel_baseline_answers_the_same_prompts():
    image = np.zeros((24, 24, 3), np.uint8)
    image[4:14, 4:14] = (220, 30, 30)  # a red square on black
    predictor = RegionPredictor("felzenszwalb", levels=[{}], sigma=0.0, min_size=10)  # no smoothing: one edge
    predictor.set_image(image)
    masks, _ = predictor.predict(point_coords=[[8, 8]], point_labels=[1])
    square = np.zeros((24, 24), bool)
    square[4:14, 4:14] = True
    assert np.array_equal(masks[0], square)
    records = GroupMaskGenerator(RegionPredictor("slic", n_segments=4)).generate(image)
    assert records and all(r["segmentation"].shape == (24, 24) for r in records)
