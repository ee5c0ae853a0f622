"""Reading and writing data files and recipe files."""
