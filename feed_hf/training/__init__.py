"""Training: the config, the FeedTrainer, its callbacks and the run helpers around Trainer."""
