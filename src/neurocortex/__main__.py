from neurocortex.cli import main

main()
