"""Local Mixture-of-Experts model: training, generation, scoring, upcycling."""
