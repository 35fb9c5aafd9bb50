# What zsh offers on <Tab>, one candidate per line: an interactive zsh in a pseudo-terminal
# (zpty), compinit with FPATHDIR first in fpath, every compadd call echoed with a marker, the
# line typed and <Tab> pressed once. The candidates of that first <Tab> are what a user sees.
#
# Usage: zsh -f zsh-capture.zsh FPATHDIR 'command line to complete'
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "PS1= ; PROMPT= ; RPROMPT="
zpty -w z "fpath=($1 \$fpath)"
zpty -w z "autoload -Uz compinit; compinit -u -D"
# Print every candidate compadd receives, one per line, after a marker (written in two parts
# so the echo of this very line carries no marker).
zpty -w z 'compadd () { builtin compadd -O __hits "$@"; print -rl -- "<h""it>"${^__hits}; builtin compadd "$@" }'
zpty -w z "zstyle ':completion:*' list-prompt ''"
zpty -w z "zstyle ':completion:*' select-prompt ''"
zpty -w z "bindkey '^I' complete-word"
zpty -w z "print '<start>'"
zpty -n -w z "$2"$'\t'
zpty -w z ""
zpty -w z "print '<end>'"
integer tries=0
output=""
while (( tries++ < 200 )); do
  zpty -r -t z line && output+="$line"
  [[ $output == *'<end>'*'<end>'* || $output == *$'\n<end>'* ]] && break
  sleep 0.05
done
print -r -- "$output" | tr -d '\r' | grep -a '<hit>' | sed 's/.*<hit>//' | sort -u
zpty -d z
