"""The browser demo (tools/app.py): its handlers on a tiny model, its API endpoints through gradio_client against the
app served on 127.0.0.1, and the page in a real headless Chromium (Debian's, driven by Selenium)."""
import importlib.util
import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import groupseg
from groupseg.app import AppInputError, Handlers
from groupseg.app.handlers import read_vocabulary
from groupseg.app.presets import held_out_images, vocabulary_presets
from groupseg.synthetic.world import WorldConfig, sample, write_segmentation
from helpers_tools import REPO, load_tool

COLOURS = "background\nred shape\ngreen shape\nblue shape\nyellow shape\npurple shape\norange shape\npink shape"


@pytest.fixture(scope="module")
def handlers(sharp_tiny_model):
    return Handlers(sharp_tiny_model)


@pytest.fixture(scope="module")
def scene_image():
    scene, _ = sample(0, "val", 3, WorldConfig())
    return scene.image


# -- handlers ---------------------------------------------------------------------------------------------------------
def test_label_mode_is_the_zero_shot_segmenter(handlers, sharp_tiny_model, scene_image):
    answer = handlers.labels(scene_image, COLOURS, bg_thresh=0.9, bg_score="probability", mode="whole", short_side=32)
    segmenter = groupseg.ZeroShotSegmenter(sharp_tiny_model, COLOURS.split("\n"), bg_thresh=0.9, short_side=32)
    direct = segmenter(scene_image)
    np.testing.assert_array_equal(answer.labels, direct.labels)
    assert answer.names == direct.classes and len(np.unique(answer.labels)) >= 2
    assert {r.label for r in answer.regions} == set(np.unique(answer.labels).tolist()) - {0}


def test_a_higher_background_threshold_never_shrinks_the_background(handlers, scene_image):
    background = [(handlers.labels(scene_image, COLOURS, bg_thresh=t, bg_score="cosine").labels == 0).sum()
                  for t in (-1.0, 0.0, 0.2, 1.0)]  # fmt: skip
    assert background == sorted(background) and background[0] == 0 and background[-1] > 0


def test_slide_mode_and_other_image_sizes_answer_at_the_input_size(handlers):
    image = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    for mode in ("whole", "slide"):
        answer = handlers.labels(image, "cat, dog, grass", mode=mode, short_side=40)
        assert answer.labels.shape == (45, 70) and answer.names == ("background", "cat", "dog", "grass")


def test_label_png_and_rle_json_read_back_to_the_answer(handlers, scene_image, tmp_path):
    answer = handlers.labels(scene_image, COLOURS, bg_thresh=0.9, bg_score="probability")
    png = Image.open(answer.save_label_png(tmp_path / "labels.png"))
    assert png.mode == "P"
    np.testing.assert_array_equal(np.asarray(png), answer.labels)
    document = json.loads(answer.save_rle_json(tmp_path / "masks.json").read_text())
    assert [c["name"] for c in document["categories"]] == list(answer.names[1:])
    assert sorted(a["category_id"] for a in document["annotations"]) == sorted(set(answer.labels.flat) - {0})
    for annotation in document["annotations"]:
        rle = annotation["segmentation"]
        mask = mask_utils.decode({**rle, "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(mask.astype(bool), answer.labels == annotation["category_id"])
        assert annotation["area"] == mask.sum() and annotation["category"] == answer.names[annotation["category_id"]]
        assert 0 < annotation["score"] <= 1


def test_overlay_is_enlarged_with_a_legend_and_areas(handlers, scene_image):
    answer = handlers.labels(scene_image, COLOURS, bg_thresh=0.9, bg_score="probability")
    shown = answer.overlay()
    assert shown.shape[0] == 384 and shown.shape[1] > 384  # 32 px × 12, and the legend panel on the right
    rows = answer.areas()
    assert sum(r["pixels"] for r in rows) == 32 * 32 and rows == sorted(rows, key=lambda r: -r["pixels"])
    legend = answer.legend_html()
    for row in rows:
        assert f"<td>{row['name']}</td><td>{row['pixels']}</td>" in legend


def _has(module: str) -> bool:
    """Whether this checkout has the promptable-masks / exemplar work a mode wraps (the app says so when not)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its package is missing too
        return False


HAS_PREDICTOR = _has("groupseg.prompts.predictor")
HAS_GENERATOR = _has("groupseg.prompts.automatic_mask_generator")
HAS_EXEMPLARS = _has("groupseg.prompts.exemplars")
needs = {name: pytest.mark.skipif(not have, reason=f"this checkout has no groupseg.prompts.{name}")
         for name, have in (("predictor", HAS_PREDICTOR), ("automatic_mask_generator", HAS_GENERATOR),
                            ("exemplars", HAS_EXEMPLARS))}  # fmt: skip


def test_modes_this_checkout_lacks_say_so(handlers, scene_image):
    missing = [(has, call) for has, call in (
        (HAS_PREDICTOR, lambda: handlers.prompt(scene_image, "3, 3, 1")),
        (HAS_GENERATOR, lambda: handlers.everything(scene_image, None)),
        (HAS_EXEMPLARS, lambda: handlers.exemplar(scene_image, scene_image, np.ones((32, 32), bool), vocabulary="cat")),
    ) if not has]  # fmt: skip
    if not missing:
        pytest.skip("this checkout has every mode")
    for _, call in missing:
        with pytest.raises(AppInputError, match="which this checkout of groupseg does not have"):
            call()


@needs["predictor"]
def test_point_and_box_modes_are_the_predictor(handlers, sharp_tiny_model, scene_image, tmp_path):
    from groupseg.prompts import GroupPredictor

    predictor = GroupPredictor(sharp_tiny_model, short_side=32)
    predictor.set_image(scene_image)
    for points, box, kwargs in (([[16, 16, 1], [3, 3, 0]], None, dict(point_coords=[[16, 16], [3, 3]],
                                 point_labels=[1, 0])), (None, [4, 4, 28, 28], dict(box=[4, 4, 28, 28]))):  # fmt: skip
        answer = handlers.prompt(scene_image, points, box)
        masks, scores = predictor.predict(**kwargs)
        np.testing.assert_array_equal(answer.labels, masks[0])  # the best mask is shown
        assert [r.score for r in answer.regions] == pytest.approx(scores.tolist())  # all granularities downloaded
    answer = handlers.prompt(scene_image, "16, 16, 1", multimask=False)
    document = json.loads(answer.save_rle_json(tmp_path / "masks.json").read_text())
    assert len(document["annotations"]) == 1 and answer.names == ("background", "mask") and answer.prompts.points


@needs["automatic_mask_generator"]
def test_everything_mode_is_the_mask_generator_labelled_with_the_vocabulary(handlers, sharp_tiny_model, scene_image):
    from groupseg.prompts import GroupMaskGenerator

    settings = handlers.settings
    generator = GroupMaskGenerator(sharp_tiny_model, short_side=settings.short_side, bg_thresh=settings.bg_thresh,
                                   bg_score=settings.bg_score)  # fmt: skip
    records = generator.generate(scene_image, vocabulary=COLOURS)
    answer = handlers.everything(scene_image, COLOURS)
    assert [answer.names[r.label] for r in answer.regions] == [r["label"] for r in records]
    for region, record in zip(answer.regions, records):
        np.testing.assert_array_equal(region.mask, record["segmentation"])
    unlabelled = handlers.everything(scene_image, None)
    assert unlabelled.names == ("background", *(f"mask {k}" for k in range(1, len(records) + 1)))
    smallest = min(unlabelled.regions, key=lambda r: r.mask.sum())
    assert (unlabelled.labels[smallest.mask] == smallest.label).all()  # small masks are painted on top


@needs["exemplars"]
def test_exemplar_mode_adds_a_class_defined_by_a_painted_region(handlers, sharp_tiny_model, scene_image):
    from groupseg.prompts.exemplars import Exemplar

    support, _ = sample(0, "val", 5, WorldConfig())
    painted = support.kind_mask > 0  # the shapes of another image
    answer = handlers.exemplar(scene_image, support.image, painted, name="thing", vocabulary="background; blue shape",
                               bg_thresh=0.4, bg_score="cosine")  # fmt: skip
    classes = ["background", "blue shape", Exemplar("thing", support.image, painted)]
    direct = groupseg.ZeroShotSegmenter(sharp_tiny_model, classes, bg_thresh=0.4, bg_score="cosine", short_side=32)
    np.testing.assert_array_equal(answer.labels, direct(scene_image).labels)
    assert answer.names == ("background", "blue shape", "thing")
    alone = handlers.exemplar(scene_image, support.image, (painted * 255).astype(np.uint8), name="thing",
                              vocabulary="", bg_thresh=0.4, bg_score="cosine")  # a 0/255 mask as the page sends it
    assert alone.names == ("background", "thing")
    with pytest.raises(AppInputError, match="needs the cosine background rule"):
        handlers.exemplar(scene_image, support.image, painted, vocabulary="", bg_score="probability")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda h, img, tmp: h.labels(None, "cat, dog"), "no image"),
        (lambda h, img, tmp: h.labels(img, "  "), "vocabulary is empty"),
        (lambda h, img, tmp: h.labels(str(tmp / "junk.jpg"), "cat, dog"), "cannot read the image"),
        (lambda h, img, tmp: h.labels(img, "cat, person: man"), "separate classes with ';'"),
        (lambda h, img, tmp: h.labels(img, "cat\ncat"), "duplicate class name"),
        (lambda h, img, tmp: h.labels(img, "dog: exemplar=/etc/a.png mask=/etc/b.png"), "takes names, not files"),
        (lambda h, img, tmp: h.prompt(img, "40, 3, 1"), "outside the 32×32 image"),
        (lambda h, img, tmp: h.prompt(img, "4, 3, 7"), "a point is x, y, label"),
        (lambda h, img, tmp: h.prompt(img, None, "5, 5, 5, 9"), "covers no pixel"),
        (lambda h, img, tmp: h.prompt(img, "[[1, 2"), "cannot read the points"),
        (lambda h, img, tmp: h.prompt(img), "give at least one point"),
        (lambda h, img, tmp: h.exemplar(img, img, np.zeros((32, 32), bool)), "exemplar mask is empty"),
        (lambda h, img, tmp: h.exemplar(img, img, np.ones((8, 8), bool)), "the exemplar mask is 8×8"),
    ],
)
def test_bad_input_is_a_one_line_message(handlers, scene_image, tmp_path, call, message):
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(AppInputError, match=message) as info:
        call(handlers, scene_image, tmp_path)
    assert "\n" not in str(info.value)


def test_typed_vocabulary_is_never_read_as_a_server_file(tmp_path):
    secret = tmp_path / "classes.txt"
    secret.write_text("secret\nwords\n")
    text = read_vocabulary(str(secret))
    assert "secret" not in text
    assert groupseg.zeroshot.parse_vocabulary(text, add_background=True).names == ("background", str(secret))
    assert read_vocabulary("person: man, woman; cat") == "person: man, woman\ncat\n"
    assert read_vocabulary(["cat", "dog"]) == "cat\ndog\n"


def test_a_painted_mask_with_alpha_is_its_opaque_pixels():
    """RGBA and LA paint layers alike: the region is where paint is (alpha), not where the colour is non-black."""
    from groupseg.app.handlers import read_mask

    region = np.zeros((6, 8), bool)
    region[1:4, 2:6] = True
    alpha = region.astype(np.uint8) * 255
    white = np.full((6, 8), 255, np.uint8)  # a white brush, white under the transparent pixels too
    assert np.array_equal(read_mask(np.stack([white, white, white, alpha], -1), (6, 8)), region)
    assert np.array_equal(read_mask(np.stack([white, alpha], -1), (6, 8)), region)


def test_uploads_are_read_as_the_tools_read_them(scene_image, tmp_path):
    """Gradio's own reading turns a 16-bit PNG white (PIL's convert clips it) and gives a GIF's palette indices as a
    gray image; the page's image input reads uploads with the tools' loader instead."""
    from gradio.data_classes import ImageData

    from groupseg.app.page import image_input
    from groupseg.zeroshot import load_rgb

    gray = scene_image.mean(axis=2).astype(np.uint16) * 257  # 16-bit: what a scientific camera writes
    Image.fromarray(gray).save(tmp_path / "deep.png")
    Image.fromarray(scene_image).save(tmp_path / "scene.gif")
    component = image_input(type="numpy", image_mode="RGB")
    for name in ("deep.png", "scene.gif"):
        uploaded = component.preprocess(ImageData(path=str(tmp_path / name), orig_name=name))
        assert uploaded.shape == scene_image.shape and np.array_equal(uploaded, load_rgb(tmp_path / name))
    deep = component.preprocess(ImageData(path=str(tmp_path / "deep.png"), orig_name="deep.png"))
    assert np.array_equal(deep[..., 0], (gray >> 8).astype(np.uint8))  # not 255 everywhere
    assert component.preprocess(None) is None


@pytest.fixture(scope="module")
def exemplar_page(handlers):
    """The page's exemplar editor and the private event that turns its value into the /exemplar inputs."""
    from groupseg.app.page import build_page

    page = build_page(handlers, vocabulary_presets(None))
    editor = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "exemplar-editor")
    event = next(f.fn for f in page.fns.values() if f.inputs == [editor])
    return editor, event


def _editor_value(editor, background: Path, painted: np.ndarray, as_blobs: bool = False):
    """The editor's value as the page's event gets it from a payload: the background file and the paint layer as the
    canvas exports it (RGBA at the size of the picture the browser showed: magenta where painted, transparent
    elsewhere), sent as uploaded files or, by a realtime editor, as blobs."""
    from gradio.components.image_editor import EditorData, EditorDataBlobs
    from gradio.data_classes import FileData

    layer = np.zeros((*painted.shape, 4), np.uint8)
    layer[painted] = (255, 0, 255, 255)
    Image.fromarray(layer).save(background.parent / "layer_0.png")
    if as_blobs:
        editor.blob_storage["blobs-1"] = EditorDataBlobs(
            background=background.read_bytes(), layers=[(background.parent / "layer_0.png").read_bytes()],
            composite=None)  # fmt: skip
        return editor.preprocess(EditorData(id="blobs-1"))
    files = [FileData(path=str(f), orig_name=f.name) for f in (background, background.parent / "layer_0.png")]
    return editor.preprocess(EditorData(background=files[0], layers=files[1:]))


@needs["exemplars"]
def test_a_16_bit_exemplar_is_read_as_the_tools_read_it(exemplar_page, handlers, scene_image, tmp_path):
    """Gradio's ImageEditor turns a 16-bit PNG white (PIL's convert clips it); the exemplar is the file as load_rgb
    reads it, and the class it defines is the one the file itself defines."""
    import gradio as gr

    from groupseg.zeroshot import load_rgb

    editor, event = exemplar_page
    support, _ = sample(0, "val", 5, WorldConfig())
    gray = support.image.mean(axis=2).astype(np.uint16) * 257  # 16-bit: what a scientific camera writes
    Image.fromarray(gray).save(tmp_path / "deep.png")
    painted = support.kind_mask > 0
    background, mask = event(_editor_value(editor, tmp_path / "deep.png", painted))
    assert np.array_equal(background, load_rgb(tmp_path / "deep.png"))
    assert np.array_equal(background[..., 0], (gray >> 8).astype(np.uint8))  # not 255 everywhere
    assert np.array_equal(mask > 0, painted)
    head = dict(name="thing", vocabulary="background; blue shape", bg_thresh=0.4, bg_score="cosine")
    want = handlers.exemplar(scene_image, str(tmp_path / "deep.png"), painted, **head)  # the file, read by the handler
    np.testing.assert_array_equal(handlers.exemplar(scene_image, background, mask, **head).labels, want.labels)
    (tmp_path / "notes.png").write_bytes(b"not a picture")
    with pytest.raises(gr.Error, match="cannot read notes.png as an image"):
        _editor_value(editor, tmp_path / "notes.png", painted)


@needs["exemplars"]
@pytest.mark.parametrize("as_blobs", [False, True], ids=["files", "blobs"])
def test_a_mask_painted_on_an_exif_rotated_exemplar_lines_up(exemplar_page, handlers, scene_image, tmp_path,
                                                            as_blobs):  # fmt: skip
    """A phone photo is stored sideways with EXIF orientation 6; the browser shows it upright and the mask is painted
    there. The exemplar is the upright picture (load_rgb), so the mask covers what was painted, not a stretched copy."""
    from groupseg.zeroshot import load_rgb

    editor, event = exemplar_page
    support, _ = sample(0, "val", 5, WorldConfig())
    upright = np.concatenate([support.image, support.image[:16]])  # 48 × 32: tall
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to show"
    Image.fromarray(np.rot90(upright)).save(tmp_path / "phone.jpg", exif=exif, quality=95)  # stored 32 × 48
    painted = np.zeros(upright.shape[:2], bool)
    painted[4:20, 6:26] = True  # in the upright picture, as the browser showed it
    background, mask = event(_editor_value(editor, tmp_path / "phone.jpg", painted, as_blobs=as_blobs))
    assert background.shape == (48, 32, 3) and np.array_equal(background, load_rgb(tmp_path / "phone.jpg"))
    assert np.abs(background.astype(int) - upright).mean() < 8  # upright, up to JPEG's loss
    assert np.array_equal(mask > 0, painted)
    head = dict(name="thing", vocabulary="background; blue shape", bg_thresh=0.4, bg_score="cosine")
    want = handlers.exemplar(scene_image, str(tmp_path / "phone.jpg"), painted, **head)  # the file, read by the handler
    np.testing.assert_array_equal(handlers.exemplar(scene_image, background, mask, **head).labels, want.labels)


def test_presets_come_from_the_configs_and_the_synthetic_world():
    presets = vocabulary_presets(REPO / "configs")
    assert list(presets)[:2] == ["synthetic world: colours", "synthetic world: shapes"]
    assert presets["synthetic world: colours"].text == COLOURS
    for name, labels in (("PASCAL VOC", 21), ("PASCAL Context", 60), ("COCO-Object", 81)):
        vocab = groupseg.zeroshot.parse_vocabulary(read_vocabulary(presets[name].text))
        assert len(vocab) == labels and vocab.names[0] == "background"
    assert presets["PASCAL Context"].bg_thresh == 0.35 and vocabulary_presets(None).keys() == presets.keys() - {
        "PASCAL VOC", "PASCAL Context", "COCO-Object"}  # fmt: skip


# -- the tool ---------------------------------------------------------------------------------------------------------
def test_app_without_a_model_says_to_run_the_quickstart(tmp_path, monkeypatch, capsys):
    app = load_tool("app")
    monkeypatch.delenv("GROUPSEG_CHECKPOINT", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(app, "REPO", tmp_path)
    assert app.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bash tools/quickstart.sh" in err and err.count("\n") == 1
    assert app.main(["--checkpoint", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_app_follows_the_quickstart_latest_pointer(tmp_path, monkeypatch, sharp_tiny_model):
    app = load_tool("app")
    groupseg.save_checkpoint(sharp_tiny_model, tmp_path / "work_dirs/quickstart/checkpoints/step_000010")
    (tmp_path / "work_dirs/quickstart/checkpoints/latest").write_text("step_000010\n")
    monkeypatch.chdir(tmp_path)
    path, note = app.resolve_checkpoint(None)
    assert path == Path("work_dirs/quickstart/checkpoints/step_000010")
    assert "quickstart model" in note and "step_000010" in note


# -- the served app: gradio_client and a browser ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_checkpoint(sharp_tiny_model, tmp_path_factory) -> str:
    """The tiny model, or $GROUPSEG_APP_CHECKPOINT (e.g. the quickstart model, for the README's screenshot)."""
    given = os.environ.get("GROUPSEG_APP_CHECKPOINT")
    return given or str(groupseg.save_checkpoint(sharp_tiny_model, tmp_path_factory.mktemp("ckpt") / "tiny"))


@pytest.fixture(scope="module")
def served_handlers(served_checkpoint):
    path, _ = load_tool("app").resolve_checkpoint(served_checkpoint)
    return Handlers(groupseg.load_model(path))


@pytest.fixture(scope="module")
def served(served_checkpoint, tmp_path_factory):
    """tools/app.py's page on a free 127.0.0.1 port, with a tiny model and a small synthetic held-out set."""
    root = tmp_path_factory.mktemp("app")
    checkpoint = served_checkpoint
    write_segmentation(root / "synthetic" / "val", 4, WorldConfig())
    app = load_tool("app")
    args = app.parse_args(["--checkpoint", checkpoint, "--data", str(root / "synthetic")])
    page, options, _ = app.build(args)
    page.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True, **options)
    try:
        yield dict(url=page.local_url, root=root, examples=held_out_images(root / "synthetic" / "val"))
    finally:
        page.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served["url"], verbose=False)


def test_each_mode_is_a_named_api_endpoint_and_nothing_else(client):
    endpoints = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert endpoints == {"/labels", "/prompt", "/everything", "/exemplar"}


def test_labels_endpoint_answers_as_the_handler_does(client, served, served_handlers):
    from gradio_client import handle_file

    image = served["examples"][0]
    overlay, legend, label_png, rle_json = client.predict(
        handle_file(image), "background; red shape; blue shape", 0.9, "probability", "whole", 32, api_name="/labels")
    want = served_handlers.labels(image, "background; red shape; blue shape", bg_thresh=0.9, bg_score="probability")
    np.testing.assert_array_equal(np.asarray(Image.open(label_png)), want.labels)
    assert Image.open(overlay).size == Image.fromarray(want.overlay()).size
    assert all(f"<td>{want.names[i]}</td>" in legend for i in np.unique(want.labels))
    assert len(json.loads(Path(rle_json).read_text())["annotations"]) == len(want.regions)


def test_prompt_everything_and_exemplar_endpoints_answer_as_the_handlers_do(client, served, served_handlers, tmp_path):
    from gradio_client import handle_file

    image = served["examples"][1]
    answers = {}
    if HAS_PREDICTOR:
        answers["/prompt"] = (served_handlers.prompt(image, "16, 16, 1; 2, 2, 0", "4, 4, 30, 30"),
                              (handle_file(image), "16, 16, 1; 2, 2, 0", "4, 4, 30, 30", "", True))  # fmt: skip
    if HAS_GENERATOR:
        answers["/everything"] = (served_handlers.everything(image, COLOURS), (handle_file(image), COLOURS, True))
    if HAS_EXEMPLARS:
        support = np.asarray(Image.open(served["examples"][2]).convert("RGB"))
        mask = np.zeros(support.shape[:2], np.uint8)
        mask[8:24, 8:24] = 255
        Image.fromarray(mask).save(tmp_path / "mask.png")
        answers["/exemplar"] = (
            served_handlers.exemplar(image, support, mask, name="thing", vocabulary=COLOURS, bg_thresh=0.4,
                                     bg_score="cosine"),
            (handle_file(image), handle_file(served["examples"][2]), handle_file(str(tmp_path / "mask.png")), "thing",
             COLOURS, 0.4, "cosine", "whole", 32),
        )  # fmt: skip
    if not answers:
        pytest.skip("this checkout has none of groupseg.prompts' predictor, mask generator and exemplars")
    for endpoint, (want, inputs) in answers.items():
        _, legend, label_png, rle_json = client.predict(*inputs, api_name=endpoint)
        np.testing.assert_array_equal(np.asarray(Image.open(label_png)), want.labels, err_msg=endpoint)
        assert len(json.loads(Path(rle_json).read_text())["annotations"]) == len(want.regions)
        assert all(f"<td>{want.names[i]}</td>" in legend for i in np.unique(want.labels))


def test_bad_input_through_the_api_is_the_handlers_message(client, served):
    from gradio_client import handle_file

    with pytest.raises(Exception, match="the vocabulary is empty"):
        client.predict(handle_file(served["examples"][0]), "", 0.9, "probability", "whole", 32, api_name="/labels")


def _chromium():
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if None in found:
        message = "headless Chromium is not installed: run `bash tools/install_browser.sh`"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it (.ci/run): the browser test must not be skipped there
        pytest.skip(message)
    return found


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,1500"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_the_page_in_a_real_browser(browser, served, tmp_path):
    """Bad input shows a notice; an uploaded image gets an overlay and a legend from the text mode and from a click."""
    from selenium.common.exceptions import ElementNotInteractableException, StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)
    browser.get(served["url"])
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#input-image input[type=file]"))

    def toasts() -> list[str]:
        try:
            return [t.text for t in browser.find_elements(By.CSS_SELECTOR, ".toast-body") if t.text]
        except StaleElementReferenceException:  # a notice closing while it is read
            return []

    def notice() -> str:
        """The text of the notice the page shows, once it is there; the notices are then closed."""
        text = wait.until(lambda d: toasts())[0]
        for close in browser.find_elements(By.CSS_SELECTOR, ".toast-close"):
            try:
                close.click()
            except (StaleElementReferenceException, ElementNotInteractableException):
                pass
        wait.until(lambda d: not toasts())
        return text

    browser.find_element(By.ID, "run-labels").click()  # no image yet
    assert "no image" in notice()
    junk = tmp_path / "notes.png"
    junk.write_bytes(b"not a picture")
    upload.send_keys(str(junk))
    assert "cannot read notes.png as an image" in notice()

    upload = browser.find_element(By.CSS_SELECTOR, "#input-image input[type=file]")
    upload.send_keys(served["examples"][0])
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#input-image img"))
    vocabulary = browser.find_element(By.CSS_SELECTOR, "#vocabulary textarea")
    saved = vocabulary.get_attribute("value")
    vocabulary.send_keys(Keys.CONTROL, "a", Keys.DELETE)  # typed, so that the page sees the change
    wait.until(lambda d: vocabulary.get_attribute("value") == "")
    browser.find_element(By.ID, "run-labels").click()
    assert "the vocabulary is empty" in notice()
    vocabulary.send_keys(saved)

    browser.find_element(By.ID, "run-labels").click()  # the text mode
    wait.until(lambda d: "background" in d.find_element(By.ID, "legend").text)
    assert browser.find_elements(By.CSS_SELECTOR, "#overlay img")
    assert browser.find_elements(By.CSS_SELECTOR, "#legend table.groupseg-legend td span")  # colour swatches

    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Click / box')]").click()
    view = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#click-image img"))
    ActionChains(browser).move_to_element(view).click().perform()  # a positive point at the centre
    points = browser.find_element(By.CSS_SELECTOR, "#points textarea, #points input")
    wait.until(lambda d: points.get_attribute("value"))
    x, y, label = (int(v) for v in points.get_attribute("value").split(","))
    assert abs(x - 16) <= 1 and abs(y - 16) <= 1 and label == 1
    if HAS_PREDICTOR:
        wait.until(lambda d: "mask" in d.find_element(By.ID, "legend").text)
        assert not toasts()
    else:
        assert "which this checkout of groupseg does not have" in notice()
    assert "Traceback" not in browser.find_element(By.TAG_NAME, "body").text

    time.sleep(0.5)  # let the overlay finish loading before the picture is taken
    screenshot = Path(os.environ.get("GROUPSEG_APP_SCREENSHOT") or tmp_path / "app.png")
    assert browser.save_screenshot(str(screenshot)) and Image.open(screenshot).size[0] >= 1000
