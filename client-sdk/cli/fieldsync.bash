# bash completion for fieldsync(1), the libfieldsync CLI.
# Installed by `cmake --install` to share/bash-completion/completions/fieldsync.
# Completes commands, each command's options (as `fieldsync CMD --help`
# lists them), files and directories for their values, and the collections
# of the store given with -s/--store for COLLECTION arguments.

_fieldsync()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null 2>&1; then
		_init_completion -n = || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local commands="init put get delete list conflicts resolve sync status deadlines keygen rekey watch help"
	local global="--store --key-file --json --help --version -s -k -j -h -V"
	local cmd="" i
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-s | -k | -e | --store | --key-file | --endpoint | --scope | --timeout | --reminders | \
			--since | --rule | --count | --state | --credential | --key-id | --new-key-file | \
			--exec | --on-restore | --retry-delay | --time-zone | --mine | --due-within | --case)
			((i++))
			;;
		-*) ;;
		*)
			cmd=${words[i]}
			break
			;;
		esac
	done

	# the value of an option
	case $prev in
	-s | --store) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	-k | --key-file | --new-key-file | --credential | --state)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	-e | --endpoint | --reminders) COMPREPLY=($(compgen -W "tcp://127.0.0.1:7400 tcp://127.0.0.1:7401" -- "$cur")); return ;;
	--on-restore) COMPREPLY=($(compgen -W "replay skip" -- "$cur")); return ;;
	--exec) COMPREPLY=($(compgen -c -- "$cur")); return ;;
	--rule)
		COMPREPLY=($(compgen -W "quick-help counselling-limit treatment-start treatment-window group-course parent-session network-meeting follow-up handover notification-duty" -- "$cur"))
		return ;;
	--time-zone)
		COMPREPLY=($(compgen -W "Europe/Copenhagen UTC" -- "$cur")); return ;;
	--due-within) COMPREPLY=($(compgen -W "1d 7d 14d 4w" -- "$cur")); return ;;
	--scope | --timeout | --since | --count | --key-id | --retry-delay | --mine | --case) return ;;
	esac
	case $cur in
	--on-restore=*) COMPREPLY=($(compgen -W "replay skip" -- "${cur#*=}")); return ;;
	esac

	local opts=""
	case $cmd in
	"") opts=$global ;;
	init) opts="--scope --credential" ;;
	put) opts="--scope" ;;
	sync) opts="--endpoint -e --timeout --no-progress" ;;
	deadlines) opts="--mine --due-within --case" ;;
	keygen) opts="--key-id" ;;
	rekey) opts="--new-key-file" ;;
	watch) opts="--endpoint -e --reminders --credential --since --rule --scope --count --state --exec --retry-delay --on-restore --time-zone" ;;
	help)
		COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts --store --key-file --json --help" -- "$cur"))
		return
	fi
	if [[ -z $cmd ]]; then
		COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		return
	fi
	case $cmd in
	put | get | delete | list | resolve)
		COMPREPLY=($(compgen -W "case contact notes" -- "$cur")) ;;
	esac
}
complete -F _fieldsync fieldsync
