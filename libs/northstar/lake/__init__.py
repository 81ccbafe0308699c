"""The lake: the table registry (names and locations), Delta helpers, file listing, commit-conflict retries."""
