"""Alignscope's Streamlit dashboard: ``streamlit run dashboard/app.py`` (or ``alignscope dashboard``)."""
