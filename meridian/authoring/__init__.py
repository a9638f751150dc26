"""Authoring loop: ``meridian new`` renders a strategy notebook from a template;
``meridian extract`` turns a notebook's export cells into a strategy module."""
