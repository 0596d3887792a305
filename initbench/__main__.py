from initbench.cli import main

main()
