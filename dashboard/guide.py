"""The first screen's guide: what Alignscope answers, three presets one click away, and what to do next."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from alignscope.dashboard.selection import Selection
from alignscope.dashboard.url_state import update_selection


@dataclass(frozen=True)
class Preset:
    """A question with the settings that ask it (Selection field names)."""

    title: str
    question: str
    settings: dict


PRESETS: tuple[Preset, ...] = (
    Preset(
        "Vision vs language on image–caption pairs",
        "The Platonic Representation Hypothesis: do an image model and a text model, trained apart, arrange the "
        "same 25 photos and their captions alike?",
        {
            "model_a": "efficientnet-lite1",
            "model_b": "minilm-l6",
            "dataset": "captions",
            "n": 25,
            "k": 5,
            "layer_a": -1,
            "layer_b": -1,
            "metric": "mutual_knn",
            "selected": (),
            "inspected": None,
        },
    ),
    Preset(
        "Same architecture, different seeds",
        "Convergent Learning: two copies of one CNN trained from different random seeds on handwritten digits — "
        "do matching layers learn the same representation?",
        {
            "model_a": "digits-cnn-s0",
            "model_b": "digits-cnn-s1",
            "dataset": "digits",
            "n": 500,
            "k": 10,
            "layer_a": -1,
            "layer_b": -1,
            "metric": "mutual_knn",
            "selected": (),
            "inspected": None,
        },
    ),
    Preset(
        "Two text models on topic sentences",
        "MiniLM and multilingual-e5 on 560 sentences over 10 topics: do two text embedders agree on which "
        "sentences are neighbours?",
        {
            "model_a": "minilm-l6",
            "model_b": "e5-small",
            "dataset": "sentences",
            "n": 560,
            "k": 10,
            "layer_a": -1,
            "layer_b": -1,
            "metric": "mutual_knn",
            "selected": (),
            "inspected": None,
        },
    ),
)

NEXT_STEPS = (
    "**Which layers align?** The heatmap below: every layer pair, coloured by its distance from chance.",
    "**Which samples do the models agree on?** The Neighbours page lists them, most and least aligned.",
    "**Does it depend on k or n?** Sweeps draws the score against k, n, prefix length or depth.",
    "**More than two models?** Many models clusters a whole set; Projections shows both maps side by side.",
    "**Does alignment grow with model strength?** Trends plots a family against a property (accuracy, size).",
)


def render_guide(sel: Selection, *, fresh: bool) -> None:
    """The guide, open on a first visit without a link's settings, one line otherwise."""
    # open for a first visit until something is chosen (a preset or any setting)
    first = fresh and sel == Selection()
    with st.expander("What Alignscope answers, and where to start", expanded=first, icon=":material/explore:"):
        st.markdown(
            "How similarly do two neural networks represent the same inputs? Alignscope extracts every layer of "
            "real models, scores their alignment with the field's metrics against a chance level, with "
            "permutation p-values and bootstrap intervals, and every view is a link you can share. "
            "Pick a question:"
        )
        columns = st.columns(len(PRESETS))
        for index, (column, preset) in enumerate(zip(columns, PRESETS)):
            with column, st.container(border=True):
                st.markdown(f"**{preset.title}**")
                st.caption(preset.question)
                active = all(
                    getattr(sel, name) == value
                    for name, value in preset.settings.items()
                    if name not in ("selected", "inspected")
                )
                st.button(
                    "Open" if not active else "Shown now",
                    key=f"preset-{index}",
                    disabled=active,
                    on_click=update_selection,
                    kwargs=preset.settings,
                    type="primary" if not active else "secondary",
                )
        st.markdown("Then:\n\n" + "\n".join(f"- {step}" for step in NEXT_STEPS))
