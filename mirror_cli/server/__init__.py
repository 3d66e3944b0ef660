"""`mirror serve`: the app's HTTP API on the same core as the CLI (FastAPI + uvicorn)."""
