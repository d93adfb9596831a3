"""What a command does end to end (ARCHITECTURE.md): runs matched to an observation first; the other
workflows (simulate, train, evaluate, sbi, analyze) move here in the redesign of issue 21."""
