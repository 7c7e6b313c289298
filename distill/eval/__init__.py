"""Evaluation under the DeepSeek-R1 protocol: k samples per problem, pass@1, cons@k, pass@k, paired CIs."""
