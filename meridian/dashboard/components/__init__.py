"""The seed's import path for the dashboard's building blocks (they live in meridian.viz)."""
