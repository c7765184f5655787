"""The demo page (Gradio Blocks): one image, one vocabulary, four ways of asking, one answer panel.

Every mode is a public API endpoint with explicit inputs (``/labels``, ``/prompt``, ``/everything``, ``/exemplar``),
so scripts call the running app with ``gradio_client``; clicks on the image and the painted exemplar are private
events that turn what the user did into those inputs and call the same functions.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls out of this machine

import logging
import shutil
import tempfile
import time
import uuid
from io import BytesIO
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import numpy as np
from gradio.data_classes import FileData
from PIL import Image, ImageOps, UnidentifiedImageError

from ..zeroshot.single_image import load_rgb
from .answer import Answer, Prompts, display_scale, prompt_view
from .handlers import AppInputError, Handlers, read_box, read_points
from .presets import Preset

log = logging.getLogger("groupseg.app")
TITLE = "groupseg: zero-shot segmentation with GroupViT"
CLICK_KINDS = ("positive point", "negative point", "box corner")
KEEP_DOWNLOADS = 32  # answers whose download files stay in the app's temporary folder
UNREADABLE = (UnidentifiedImageError, OSError, ValueError)  # what reading an upload that is no image raises


def image_input(**options) -> gr.Image:
    """``gr.Image`` whose unreadable uploads give a one-line notice instead of a bare "Error"; an RGB numpy input reads
    its uploads with :func:`load_rgb`, as the tools do (Gradio's ``convert("RGB")`` turns a 16-bit PNG white).

    (Its ``preprocess`` is wrapped on the instance: a subclass of a Gradio component makes Gradio write a ``.pyi``
    stub beside this module at import time.)
    """
    component = gr.Image(**options)
    preprocess = component.preprocess
    as_tools = options.get("type") == "numpy" and options.get("image_mode") == "RGB"

    def readable(payload):
        try:
            path = getattr(payload, "path", None)
            return load_rgb(path) if as_tools and path else preprocess(payload)
        except UNREADABLE as err:
            raise _unreadable(getattr(payload, "orig_name", None) or "the upload", err) from err

    component.preprocess = readable
    return component


def exemplar_editor(brush_size: int) -> gr.ImageEditor:
    """The exemplar's ``gr.ImageEditor``, whose value's background is the uploaded file as :func:`load_rgb` reads it
    (H×W×3 uint8), as every other upload is: Gradio's own reading ignores EXIF orientation, so the mask, painted on the
    upright picture the browser shows, would be stretched onto a sideways one, and it turns a 16-bit PNG white.
    Layers and composite stay Gradio's RGBA arrays.

    (Gradio 6's browser editor sends its canvas's export, already upright and 8-bit, once the user has painted; the
    original file comes when the server set the value, or from a script.)
    """
    component = gr.ImageEditor(label="exemplar: image + painted mask", type="numpy", image_mode="RGBA",
                               sources=["upload", "clipboard"],
                               brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed", default_size=brush_size),
                               layers=False, transforms=(), elem_id="exemplar-editor")  # fmt: skip
    preprocess = component.preprocess

    def readable(payload):
        if payload is None:
            return None
        blobs = component.blob_storage.get(payload.id) if payload.id is not None else None  # preprocess drops them
        source = blobs.background if blobs is not None else payload.background
        try:
            value = preprocess(payload)
            if source is not None:
                value["background"] = _read_upload(source)
        except UNREADABLE as err:
            raise _unreadable(getattr(source, "orig_name", None) or "the exemplar image", err) from err
        return value

    component.preprocess = readable
    return component


def build_page(
    handlers: Handlers,
    presets: dict[str, Preset],
    examples: list[str] | None = None,
    model_name: str = "",
    default_preset: str | None = None,
) -> gr.Blocks:
    """The Blocks app; ``launch(**launch_options(examples))`` it."""
    settings = handlers.settings
    default_preset = default_preset if default_preset in presets else next(iter(presets))
    downloads = Path(tempfile.mkdtemp(prefix="groupseg-app-"))
    brush = max(2, round(settings.short_side / 12))  # pixels of the exemplar image: 3 for the synthetic world's 32 px

    def answer_outputs(answer: Answer) -> tuple[Any, ...]:
        folder = downloads / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        for old in sorted(downloads.iterdir())[:-KEEP_DOWNLOADS]:  # Gradio has copied them to its cache long since
            shutil.rmtree(old, ignore_errors=True)
        if not any(i > 0 for i in np.unique(answer.labels).tolist()):
            gr.Warning("nothing was found: every pixel is background (lower the background threshold?)")
        return (answer.overlay(), answer.legend_html(), str(answer.save_label_png(folder / "groupseg_labels.png")),
                str(answer.save_rle_json(folder / "groupseg_masks.json")))  # fmt: skip

    def guarded(fn: Callable[..., Answer], *args, progress: gr.Progress, **kwargs) -> tuple[Any, ...]:
        """Run a handler; bad input and failures become a one-line notice on the page (full trace in the log)."""
        try:
            answer = fn(*args, progress=lambda fraction, message: progress(fraction, desc=message), **kwargs)
        except AppInputError as err:
            raise gr.Error(str(err), print_exception=False) from err
        except Exception as err:  # noqa: BLE001 - the page shows one line, the server log keeps the trace
            log.exception("the demo failed")
            message = f"the model failed on this input ({type(err).__name__}: {err})"
            raise gr.Error(message, print_exception=False) from err
        progress(0.95, desc="drawing the overlay")
        return answer_outputs(answer)

    # -- the public endpoints (their parameters are the API's) -------------------------------------------------------
    def labels(image, vocabulary, bg_thresh, bg_score, mode, short_side, progress=gr.Progress()):
        return guarded(handlers.labels, image, vocabulary, bg_thresh=bg_thresh, bg_score=bg_score, mode=mode,
                       short_side=short_side, progress=progress)  # fmt: skip

    def prompt(image, points, box, text, multimask, progress=gr.Progress()):
        return guarded(handlers.prompt, image, points, box, text=text, multimask=multimask, progress=progress)

    def everything(image, vocabulary, label_masks, progress=gr.Progress()):
        return guarded(handlers.everything, image, vocabulary if label_masks else None, progress=progress)

    def exemplar(image, exemplar_image, exemplar_mask, name, vocabulary, bg_thresh, bg_score, mode, short_side,
                 progress=gr.Progress()):  # fmt: skip
        return guarded(handlers.exemplar, image, exemplar_image, exemplar_mask, name=name, vocabulary=vocabulary,
                       bg_thresh=bg_thresh, bg_score=bg_score, mode=mode, short_side=short_side,
                       progress=progress)  # fmt: skip

    # -- private events: what the user did → the endpoints' inputs ---------------------------------------------------
    def show_for_clicks(image, points, box):
        if image is None:
            return None
        coords, xyxy = [], None
        try:
            coords = read_points(points, image.shape[:2])
            xyxy = read_box(_complete_box(box), image.shape[:2])
        except AppInputError:
            pass  # the endpoint says what is wrong; the view shows what it can
        return prompt_view(image, Prompts(coords, xyxy))

    def add_click(image, points, box, kind, event: gr.SelectData):
        """A click on the enlarged view → a point (x, y, 1 | 0) or a box corner in the image's pixel coordinates."""
        if image is None:
            raise gr.Error("no image: upload one or pick an example first")
        scale = display_scale(image.shape[:2])
        x, y = (min(int(v) // scale, side - 1) for v, side in zip(event.index, image.shape[1::-1]))
        if kind == "box corner":
            corners = [v.strip() for v in (box or "").replace(";", ",").split(",") if v.strip()]
            box = f"{corners[0]}, {corners[1]}, {x}, {y}" if len(corners) == 2 else f"{x}, {y}"
        else:
            points = "; ".join(p for p in [(points or "").strip(), f"{x}, {y}, {int(kind == 'positive point')}"] if p)
        return points, box, show_for_clicks(image, points, box)

    def prompt_when_ready(image, points, box, text, multimask, progress=gr.Progress()):
        """After a click: segment, unless the only prompt so far is a box's first corner."""
        if not (points or "").strip() and _complete_box(box) is None and not (text or "").strip():
            return (gr.skip(),) * 4
        return prompt(image, points, _complete_box(box) or "", text, multimask, progress)

    def exemplar_from_editor(value):
        """The editor's background is the exemplar image, its painted layers (opaque pixels) the mask."""
        if not value or value.get("background") is None:
            raise gr.Error("no exemplar image: upload one into the exemplar editor and paint the region")
        background = np.asarray(value["background"])[..., :3]
        painted = np.zeros(background.shape[:2], bool)
        for layer in value.get("layers") or []:
            alpha = np.asarray(layer)[..., 3] if np.asarray(layer).ndim == 3 else np.asarray(layer)
            if alpha.shape != painted.shape:
                alpha = np.asarray(Image.fromarray(alpha.astype(np.uint8)).resize(painted.shape[::-1], Image.NEAREST))
            painted |= alpha > 0
        if not painted.any():
            raise gr.Error("the exemplar mask is empty: paint the region that shows the class")
        return background, (painted * 255).astype(np.uint8)

    # -- layout ------------------------------------------------------------------------------------------------------
    with gr.Blocks(title=TITLE) as page:
        gr.Markdown(f"## {TITLE}\n{model_name}")
        with gr.Row():
            with gr.Column(scale=1):
                image = image_input(label="Image", type="numpy", image_mode="RGB", sources=["upload", "clipboard"],
                                    elem_id="input-image", height=260)  # fmt: skip
                if examples:
                    gr.Examples(examples=[[p] for p in examples], inputs=[image], label="Held-out synthetic images",
                                examples_per_page=12)  # fmt: skip
            with gr.Column(scale=1):
                preset = gr.Dropdown(choices=list(presets), value=default_preset, label="Vocabulary preset")
                vocabulary = gr.Textbox(
                    value=presets[default_preset].text, lines=6, max_lines=12, label="Vocabulary", elem_id="vocabulary",
                    info="one class a line ('person: man, woman' adds synonyms; 'template: a photo of a {}.' sets the "
                    "prompts; 'background' is label 0, decided by the threshold), or 'cat, dog' on one line",
                )  # fmt: skip
                with gr.Accordion("Zero-shot head (label and exemplar modes)", open=False):
                    bg_score = gr.Radio(["probability", "cosine"], value=settings.bg_score, label="background rule",
                                        info="what the threshold applies to: the official softmax score, or the "
                                        "cosine similarity (the synthetic recipe)")  # fmt: skip
                    bg_thresh = gr.Slider(0.0, 1.0, value=settings.bg_thresh, step=0.01, label="background threshold")
                    mode = gr.Radio(["whole", "slide"], value=settings.mode, label="inference",
                                    info="whole image at once, or sliding windows as in evaluation")  # fmt: skip
                    short_side = gr.Number(value=settings.short_side, precision=0, minimum=8,
                                           label="short side (px)",
                                           info="images are resized to this short side (the model's scale)")
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tabs():
                    with gr.Tab("Label the whole image", id="labels"):
                        gr.Markdown("Every pixel gets a class of the vocabulary or background (GroupViT's head).")
                        labels_button = gr.Button("Label the image", variant="primary", elem_id="run-labels")
                    with gr.Tab("Click / box", id="prompt", elem_id="tab-prompt"):
                        gr.Markdown("Click on the image: each click adds a point (or a box corner) and segments.")
                        click_view = gr.Image(label="click here", type="numpy", interactive=False,
                                              elem_id="click-image", format="png", buttons=[], height=320)  # fmt: skip
                        click_kind = gr.Radio(list(CLICK_KINDS), value=CLICK_KINDS[0], label="a click adds")
                        with gr.Row():
                            points = gr.Textbox(label="points: x, y, label (1 positive, 0 negative); ...",
                                                elem_id="points")  # fmt: skip
                            box = gr.Textbox(label="box: x0, y0, x1, y1", elem_id="box")
                        with gr.Row():
                            text = gr.Textbox(label="text prompt (optional)")
                            multimask = gr.Checkbox(value=True, label="several granularities (the download holds all)")
                        with gr.Row():
                            clear_button = gr.Button("Clear prompts")
                            prompt_button = gr.Button("Segment", variant="primary", elem_id="run-prompt")
                    with gr.Tab("Segment everything", id="everything"):
                        gr.Markdown("Every mask proposal of the image, labelled with the vocabulary when ticked.")
                        label_masks = gr.Checkbox(value=True, label="label the masks with the vocabulary")
                        everything_button = gr.Button("Segment everything", variant="primary", elem_id="run-everything")
                    with gr.Tab("Exemplar", id="exemplar"):
                        gr.Markdown("Upload a second image and paint the region that shows the class.")
                        editor = exemplar_editor(brush)
                        exemplar_name = gr.Textbox(value="exemplar", label="class name of the exemplar",
                                                   info="it joins the vocabulary's classes (clear the vocabulary "
                                                   "for the exemplar alone)")  # fmt: skip
                        with gr.Row():
                            # PNG, not Gradio's default WebP: the mask must come back exactly as painted
                            exemplar_image = gr.Image(label="exemplar image", type="numpy", interactive=False,
                                                      format="png", height=120)  # fmt: skip
                            exemplar_mask = gr.Image(label="exemplar mask", type="numpy", interactive=False,
                                                     image_mode="L", format="png", height=120)  # fmt: skip
                        exemplar_button = gr.Button("Segment with the exemplar", variant="primary",
                                                    elem_id="run-exemplar")  # fmt: skip
            with gr.Column(scale=1):
                overlay = gr.Image(label="Overlay", type="numpy", interactive=False, format="png", elem_id="overlay",
                                   height=320)  # fmt: skip
                legend = gr.HTML(label="Legend and areas", elem_id="legend")
                with gr.Row():
                    label_png = gr.File(label="label PNG", elem_id="label-png", height=80)
                    rle_json = gr.File(label="COCO RLE JSON", elem_id="rle-json", height=80)
        results = [overlay, legend, label_png, rle_json]
        head = [bg_thresh, bg_score, mode, short_side]

        preset.change(lambda name: (presets[name].text, presets[name].bg_thresh or gr.skip()), [preset],
                      [vocabulary, bg_thresh], api_visibility="private")  # fmt: skip
        labels_button.click(labels, [image, vocabulary, *head], results, api_name="labels")
        prompt_button.click(prompt, [image, points, box, text, multimask], results, api_name="prompt")
        everything_button.click(everything, [image, vocabulary, label_masks], results, api_name="everything")
        painted = exemplar_button.click(exemplar_from_editor, [editor], [exemplar_image, exemplar_mask],
                                        api_visibility="private")  # fmt: skip
        painted.success(exemplar, [image, exemplar_image, exemplar_mask, exemplar_name, vocabulary, *head], results,
                        api_name="exemplar")  # fmt: skip
        for trigger in (image.change, points.submit, box.submit):
            trigger(show_for_clicks, [image, points, box], [click_view], api_visibility="private")
        clicked = click_view.select(add_click, [image, points, box, click_kind], [points, box, click_view],
                                    api_visibility="private")  # fmt: skip
        clicked.then(prompt_when_ready, [image, points, box, text, multimask], results, api_visibility="private")
        clear_button.click(lambda image: ("", "", show_for_clicks(image, "", "")), [image], [points, box, click_view],
                           api_visibility="private")  # fmt: skip
    return page


def launch_options(examples: list[str] | None = None) -> dict[str, Any]:
    """``launch()`` keywords: system fonts (nothing fetched from outside) and the example images' folder allowed."""
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    folders = sorted({str(Path(p).resolve().parent) for p in examples or []})
    css = "#input-image img {image-rendering: pixelated; min-height: 200px; object-fit: contain}"  # 32 px images
    return dict(theme=theme, css=css, allowed_paths=folders, show_error=False)


def _complete_box(box: str | None) -> str | None:
    return box if box and len([v for v in box.replace(";", ",").split(",") if v.strip()]) == 4 else None


def _unreadable(name: str, err: Exception) -> gr.Error:
    """A one-line notice for an upload that is not an image, instead of Gradio's bare "Error"."""
    return gr.Error(f"cannot read {name} as an image ({type(err).__name__}): upload a PNG, JPEG or WebP",
                    print_exception=False)  # fmt: skip


def _read_upload(source: FileData | bytes) -> np.ndarray:
    """An uploaded file (or the bytes of one) → H×W×3 uint8, exactly as :func:`load_rgb` reads a path."""
    if isinstance(source, FileData):
        return load_rgb(source.path)
    with Image.open(BytesIO(source)) as opened:
        return load_rgb(ImageOps.exif_transpose(opened))
