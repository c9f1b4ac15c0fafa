"""The paper's experiments beyond Table 1, each as a command (`python -m invgan.experiments.*`):
`semantic_consistency` (Table 2: classifiers trained on reconstructions)."""
