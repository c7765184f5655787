"""The browser demo (``python tools/app.py``): every way of asking groupseg for masks on one page, each one a named
API endpoint. ``handlers`` holds the modes as plain functions (no Gradio), ``answer`` what they return and how it is
shown and downloaded, ``presets`` the vocabularies and example images offered, ``page`` the Gradio Blocks."""
from .answer import Answer, Prompts, Region
from .handlers import AppInputError, Handlers, Settings, settings_for

__all__ = ["Answer", "AppInputError", "Handlers", "Prompts", "Region", "Settings", "settings_for"]
