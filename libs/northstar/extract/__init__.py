"""Extract data from source systems into the landing zone (REST APIs in `rest`, databases alongside)."""
