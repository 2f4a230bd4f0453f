"""VM consoles across the privilege line: the root worker's console broker and its client."""
