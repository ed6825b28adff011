"""giblet."""
