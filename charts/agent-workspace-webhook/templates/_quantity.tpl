{{/*
What is wrong with a storage size, or nothing: exactly what the webhook's settings take
(setting_values.py check_storage_size; tests/e2e/test_helm_sizes.py feeds both the same sizes).
A quantity in resource.Quantity's grammar (rules/quantity.py) that is a positive whole number of
bytes, at most 2^63-1. Worked on the digits as text: helm's numbers are 64-bit floats or
integers, a size's digits need not fit either.
*/}}
{{- define "agent-workspace-webhook.storageSizeProblem" -}}
{{- $size := . }}
{{- $grammar := "^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$" }}
{{- if not (regexMatch $grammar $size) }}
{{- printf "settings.storage.size must be a Kubernetes quantity such as 10Gi, not %q" $size }}
{{- else }}
{{- $parts := splitList "|" (regexReplaceAll "^([+-]?)([0-9]*)\\.?([0-9]*)(.*)$" $size "${1}|${2}|${3}|${4}") }}
{{- $sign := index $parts 0 }}{{ $int := index $parts 1 }}{{ $frac := index $parts 2 }}{{ $suffix := index $parts 3 }}
{{- /* value = digits x 10^shift x 2^binary */}}
{{- $binary := get (dict "Ki" 10 "Mi" 20 "Gi" 30 "Ti" 40 "Pi" 50 "Ei" 60) $suffix | default 0 }}
{{- $decimal := dict "" 0 "n" -9 "u" -6 "m" -3 "k" 3 "M" 6 "G" 9 "T" 12 "P" 15 "E" 18 }}
{{- $exponent := 0 }}{{ $huge := false }}
{{- if hasKey $decimal $suffix }}{{ $exponent = get $decimal $suffix }}
{{- else if not $binary }}
{{- /* e or E and an exponent: past 18 digits a size is too large (or, negative, too small) */}}
{{- $huge = gt (len (regexReplaceAll "^[eE][+-]?0*" $suffix "")) 18 }}
{{- if not $huge }}{{ $exponent = atoi (regexReplaceAll "^[eE]" $suffix "") }}{{ end }}
{{- end }}
{{- /* the digits without zeros at either end; each zero cut off the fraction's end is no shift,
       each cut off a whole number's end one more */}}
{{- $fraction := regexReplaceAll "0+$" $frac "" }}
{{- $whole := regexReplaceAll "0+$" $int "" }}
{{- $digits := regexReplaceAll "^0+" (print $int $fraction) "" }}
{{- $shift := sub $exponent (len $fraction) }}
{{- if not $fraction }}
{{- $digits = regexReplaceAll "^0+" $whole "" }}
{{- $shift = add $exponent (sub (len $int) (len $whole)) }}
{{- end }}
{{- $ok := and (ne $sign "-") $digits (not $huge) }}
{{- if and $ok (lt $shift 0) }}
{{- /* a fraction of k digits times 2^binary is whole when k <= binary and 5^k divides it */}}
{{- $ok = and (gt $binary 0) (le (len $fraction) $binary) }}
{{- $rest := $fraction }}
{{- range until (len $fraction) }}
{{- if $ok }}
{{- $quotient := "" }}{{ $carry := 0 }}
{{- range splitList "" $rest }}
{{- $n := add (mul $carry 10) (atoi .) }}
{{- $quotient = printf "%s%d" $quotient (div $n 5) }}{{ $carry = mod $n 5 }}
{{- end }}
{{- $ok = eq $carry 0 }}{{ $rest = $quotient }}
{{- end }}
{{- end }}
{{- end }}
{{- if $ok }}
{{- /* at most 2^63-1: with 2^binary, the whole number below 2^(63-binary); else as decimal text */}}
{{- if $binary }}
{{- $limit := get (dict "10" 9007199254740992 "20" 8796093022208 "30" 8589934592 "40" 8388608 "50" 8192 "60" 8) (toString $binary) }}
{{- $units := regexReplaceAll "^0+" $int "" }}
{{- $ok = and (le (len $units) 18) (lt (atoi (default "0" $units)) $limit) }}
{{- else }}
{{- $length := add (len $digits) $shift }}
{{- $ok = or (lt $length 19) (and (eq $length 19) (le (print $digits (repeat (int $shift) "0")) "9223372036854775807")) }}
{{- end }}
{{- end }}
{{- if not $ok }}
{{- printf "settings.storage.size must be a whole number of bytes from 1 to 9223372036854775807 (just under 8Ei), such as 10Gi or 1.5Ti, not %q" $size }}
{{- end }}
{{- end }}
{{- end }}
