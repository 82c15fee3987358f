// regprobe (tests/e2e/cluster): dial a kubelet plugin-registration socket exactly as kubelet v1.37
// does (pkg/kubelet/pluginmanager/operationexecutor: raw socket path as the gRPC target, so the HTTP/2
// :authority is the path), or with an explicit authority (second argument), and call GetInfo.
// Reproduces the refusal of the driver's -reg.sock:  go build -o regprobe . && ./regprobe <sock> [authority]
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func main() {
	path := os.Args[1]
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		})}
	if len(os.Args) > 2 {
		opts = append(opts, grpc.WithAuthority(os.Args[2]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := grpc.DialContext(ctx, path, opts...)
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	info, err := registerapi.NewRegistrationClient(c).GetInfo(ctx, &registerapi.InfoRequest{})
	fmt.Printf("GetInfo: %v err=%v\n", info, err)
}
