"""Training: the pipeline behind train.py (`pipeline`), the checkpoint a run resumes from
(`resume`) and what a run leaves in its folder (`run_folder`)."""
