complete --keep-order --exclusive --command pactor --arguments "(PACTOR_COMPLETE=fish pactor -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
