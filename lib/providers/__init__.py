"""Calendar providers: one module per provider, each with one public `fetch_slots` function."""
