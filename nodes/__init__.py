"""What each agency does with the exchange: police, bureau, carrier, commerce, office."""
