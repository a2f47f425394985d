"""waifugen: the Dagster code location of the AI-creator content pipeline."""
