"""Publishing: what a run leaves (export, run record, model card) and how it reaches the Hub."""
