from initbench.launch import main

main()
