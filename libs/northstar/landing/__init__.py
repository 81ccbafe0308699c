"""Landing: the raw files sources deliver. `writer` lands extracted pages (local or S3), `files` knows which landed files a table has not ingested yet (ops.landing_files)."""
