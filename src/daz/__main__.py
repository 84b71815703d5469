from daz.cli import main

main()
