"""Analytics: the dbt project in the asset graph (marts over the app tables)."""
