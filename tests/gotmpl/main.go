// Renders an Ollama Modelfile TEMPLATE the way Ollama does (text/template, Ollama-shaped values) and reports
// the tool tag Ollama's parser would take from it. Stdlib only: `go run main.go TEMPLATE_FILE CASE_JSON`.
// Prints {"render": "...", "tag": "..."} as JSON.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
	"text/template/parse"
)

// The shapes below follow Ollama's api package: arguments are a map printed as JSON, tool schemas are
// typed structs (keys Ollama does not model are dropped when a request is decoded).
type ToolCallFunctionArguments map[string]any

func (a ToolCallFunctionArguments) String() string {
	b, _ := json.Marshal(map[string]any(a))
	return string(b)
}

type ToolCallFunction struct {
	Index     int                       `json:"index,omitempty"`
	Name      string                    `json:"name"`
	Arguments ToolCallFunctionArguments `json:"arguments"`
}

type ToolCall struct {
	Function ToolCallFunction `json:"function"`
}

type Message struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	ToolName  string     `json:"tool_name,omitempty"`
}

// PropertyType is a JSON Schema type: one name is written as a string, several as an array.
type PropertyType []string

func (pt PropertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}

func (pt *PropertyType) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*pt = PropertyType{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return err
	}
	*pt = many
	return nil
}

type ToolProperty struct {
	Type        PropertyType `json:"type,omitempty"`
	Items       any          `json:"items,omitempty"`
	Description string       `json:"description,omitempty"`
	Enum        []any        `json:"enum,omitempty"`
}

type ToolFunctionParameters struct {
	Type       string                  `json:"type"`
	Defs       any                     `json:"$defs,omitempty"`
	Items      any                     `json:"items,omitempty"`
	Required   []string                `json:"required,omitempty"`
	Properties map[string]ToolProperty `json:"properties"`
}

type ToolFunction struct {
	Name        string                 `json:"name"`
	Description string                 `json:"description"`
	Parameters  ToolFunctionParameters `json:"parameters"`
}

func (t *ToolFunction) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

type Tool struct {
	Type     string       `json:"type"`
	Items    any          `json:"items,omitempty"`
	Function ToolFunction `json:"function"`
}

type Case struct {
	Messages []Message `json:"messages"`
	Tools    []Tool    `json:"tools"`
	Prompt   string    `json:"prompt"`
	System   string    `json:"system"`
}

var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
}

// collate mirrors Ollama: system messages are joined into .System (and stay in .Messages); consecutive
// messages of one role are merged, except tool results.
func collate(msgs []Message) (string, []*Message) {
	var system []string
	var out []*Message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(out) > 0 && out[len(out)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			out[len(out)-1].Content += "\n\n" + msgs[i].Content
		} else {
			out = append(out, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), out
}

func hasIdent(idents []string, want string) bool {
	for _, s := range idents {
		if s == want {
			return true
		}
	}
	return false
}

// findToolCallNode and findTextNode follow Ollama's tools/template.go parseTag.
func findToolCallNode(nodes []parse.Node) *parse.IfNode {
	isToolCalls := func(n *parse.IfNode) bool {
		for _, cmd := range n.Pipe.Cmds {
			for _, arg := range cmd.Args {
				if f, ok := arg.(*parse.FieldNode); ok && hasIdent(f.Ident, "ToolCalls") {
					return true
				}
			}
		}
		return false
	}
	for _, node := range nodes {
		switch n := node.(type) {
		case *parse.IfNode:
			if isToolCalls(n) {
				return n
			}
			if r := findToolCallNode(n.List.Nodes); r != nil {
				return r
			}
			if n.ElseList != nil {
				if r := findToolCallNode(n.ElseList.Nodes); r != nil {
					return r
				}
			}
		case *parse.ListNode:
			if r := findToolCallNode(n.Nodes); r != nil {
				return r
			}
		case *parse.RangeNode:
			if r := findToolCallNode(n.List.Nodes); r != nil {
				return r
			}
			if n.ElseList != nil {
				if r := findToolCallNode(n.ElseList.Nodes); r != nil {
					return r
				}
			}
		case *parse.WithNode:
			if r := findToolCallNode(n.List.Nodes); r != nil {
				return r
			}
			if n.ElseList != nil {
				if r := findToolCallNode(n.ElseList.Nodes); r != nil {
					return r
				}
			}
		}
	}
	return nil
}

func findTextNode(nodes []parse.Node) *parse.TextNode {
	for _, node := range nodes {
		switch n := node.(type) {
		case *parse.TextNode:
			return n
		case *parse.IfNode:
			if t := findTextNode(n.List.Nodes); t != nil {
				return t
			}
			if n.ElseList != nil {
				if t := findTextNode(n.ElseList.Nodes); t != nil {
					return t
				}
			}
			return nil
		case *parse.ListNode:
			if t := findTextNode(n.Nodes); t != nil {
				return t
			}
		case *parse.RangeNode, *parse.WithNode, *parse.ActionNode:
			return nil
		}
	}
	return nil
}

func parseTag(tmpl *template.Template) string {
	tc := findToolCallNode(tmpl.Tree.Root.Nodes)
	if tc == nil {
		return ""
	}
	tn := findTextNode(tc.List.Nodes)
	if tn == nil {
		return ""
	}
	tag := strings.TrimSpace(string(tn.Text))
	tag = strings.ReplaceAll(tag, "\r\n", "\n")
	return strings.Split(tag, "{")[0]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fail(fmt.Errorf("usage: main TEMPLATE_FILE CASE_JSON"))
	}
	src, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	raw, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail(err)
	}
	var c Case
	if err := json.Unmarshal(raw, &c); err != nil {
		fail(err)
	}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(string(src))
	if err != nil {
		fail(err)
	}
	var b strings.Builder
	var values map[string]any
	if len(c.Messages) > 0 {
		system, msgs := collate(c.Messages)
		values = map[string]any{"System": system, "Messages": msgs, "Tools": c.Tools, "Response": ""}
	} else {
		values = map[string]any{"System": c.System, "Prompt": c.Prompt, "Response": ""}
	}
	if err := tmpl.Execute(&b, values); err != nil {
		fail(err)
	}
	out, _ := json.Marshal(map[string]string{"render": b.String(), "tag": parseTag(tmpl)})
	fmt.Println(string(out))
}
