// go_peer.go - a real Go program for the tests of `keepalive run`, `inspect`
// and `apply` (go_test.py): its sockets are made by the Go runtime's own
// system calls, never by the C library's accept/connect that libkeepalive
// interposes. Standard library only; built by the test with `go build`.
//
// It listens on 127.0.0.1 (port chosen by the kernel) and obeys one command
// a line on its standard input, answering each with one JSON line that
// describes every connection it holds, read from inside with getsockopt:
//
//	report        nothing else
//	accept NAME   accept one connection from the listener, as NAME
//	dial NAME P   open a connection to 127.0.0.1:P, as NAME
//
// The first line (before any command) gives its pid and port. It exits 0 when
// its standard input closes. With -keepalive=off, its listener and dialer
// disable Go's keepalive (KeepAlive: -1); by default Go switches keepalive on
// for every accepted and dialed connection, with its own 15 s timings.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// One socket as the program sees it: [SO_KEEPALIVE, TCP_KEEPIDLE,
// TCP_KEEPINTVL, TCP_KEEPCNT] and its inode, which `ss -e` shows.
type socketReport struct {
	Inode   uint64 `json:"inode"`
	Local   string `json:"local"`
	Remote  string `json:"remote"`
	Options []int  `json:"options"`
}

func describe(conn net.Conn) socketReport {
	report := socketReport{Local: conn.LocalAddr().String(), Remote: conn.RemoteAddr().String()}
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		fail(err)
	}
	err = raw.Control(func(fd uintptr) {
		var stat syscall.Stat_t
		if err := syscall.Fstat(int(fd), &stat); err != nil {
			fail(err)
		}
		report.Inode = stat.Ino
		for _, option := range [][2]int{
			{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
		} {
			value, err := syscall.GetsockoptInt(int(fd), option[0], option[1])
			if err != nil {
				fail(err)
			}
			report.Options = append(report.Options, value)
		}
	})
	if err != nil {
		fail(err)
	}
	return report
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go_peer:", err)
	os.Exit(1)
}

func main() {
	keepalive := flag.String("keepalive", "default", "default: Go's keepalive; off: KeepAlive -1")
	flag.Parse()
	// 0: Go's default (keepalive on, 15 s); negative: keepalive left off.
	period, known := map[string]time.Duration{"default": 0, "off": -1}[*keepalive]
	if !known {
		fail(fmt.Errorf("-keepalive must be default or off, not %q", *keepalive))
	}
	config := net.ListenConfig{KeepAlive: period}
	dialer := net.Dialer{KeepAlive: period}
	listener, err := config.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	output := json.NewEncoder(os.Stdout)
	output.Encode(map[string]int{"pid": os.Getpid(),
		"port": listener.Addr().(*net.TCPAddr).Port})

	conns := map[string]net.Conn{}
	input := bufio.NewScanner(os.Stdin)
	for input.Scan() {
		words := strings.Fields(input.Text())
		switch {
		case len(words) == 2 && words[0] == "accept":
			conns[words[1]], err = listener.Accept()
		case len(words) == 3 && words[0] == "dial":
			conns[words[1]], err = dialer.Dial("tcp4", "127.0.0.1:"+words[2])
		case len(words) == 1 && words[0] == "report":
		default:
			err = fmt.Errorf("unknown command %q", input.Text())
		}
		if err != nil {
			fail(err)
		}
		reports := map[string]socketReport{}
		for name, conn := range conns {
			reports[name] = describe(conn)
		}
		output.Encode(reports)
	}
}
