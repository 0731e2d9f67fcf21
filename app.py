"""Nursery's entry point (`streamlit run app.py`): the navigation. The overview is the first page, named
"Overview" in the sidebar; the areas follow in the order a new user walks them."""
import streamlit as st

st.navigation([
    st.Page("overview.py", title="Overview", icon="🌱", default=True),
    st.Page("pages/1_Data_Garden.py", title="Data Garden", icon="🌿"),
    st.Page("pages/2_Training_Forge.py", title="Training Forge", icon="🔥"),
    st.Page("pages/3_Model_Cradle.py", title="Model Cradle", icon="🧪"),
    st.Page("pages/4_Settings.py", title="Settings", icon="⚙️"),
]).run()
