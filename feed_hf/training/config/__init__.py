"""FeedConfig: its fields, their types, their checks and their read-outs."""
