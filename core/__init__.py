"""Alignscope compute layer: models, datasets, extraction, cache, metrics. Never imports Streamlit."""

__version__ = "0.1.0"
