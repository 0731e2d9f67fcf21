"""The only Streamlit-aware part of nursery_core: cached services and small widgets shared by pages."""
