"""Privacy: deletion requests (72 hours), processed across every table that holds a subject's data, with proof."""
